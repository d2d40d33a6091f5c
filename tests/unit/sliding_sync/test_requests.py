"""Request parsing and bounds: bad input is a Matrix error, huge sizes are capped."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.sliding_sync.requests import parse_stable, parse_unstable
from dendrite_lite.sliding_sync.room_results import computed_name

ME = "@me:example.org"


def errcode(body: Any, stable: bool = False) -> str:
    with pytest.raises(MatrixError) as caught:
        if stable:
            parse_stable(body, ME)
        else:
            parse_unstable(body, ME)
    return str(caught.value.errcode)


def test_element_x_body_parses() -> None:
    request = parse_unstable(
        {
            "conn_id": "room-list",
            "txn_id": "t1",
            "lists": {
                "all_rooms": {
                    "ranges": [[0, 19]],
                    "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
                    "timeline_limit": 1,
                    "filters": {},
                }
            },
            "extensions": {"receipts": {"enabled": True, "rooms": ["*"]}},
        },
        ME,
    )
    spec = request.lists["all_rooms"]
    assert spec.ranges == ((0, 19),)
    assert spec.config.timeline_limit == 1
    assert spec.config.lazy_members
    assert request.conn_id == "room-list"
    assert request.txn_id == "t1"


def test_no_body_is_an_empty_request() -> None:
    request = parse_unstable(None, ME)
    assert request.lists == {}
    assert request.conn_id == ""


@pytest.mark.parametrize(
    "body",
    [
        {"lists": {"a": {"ranges": [[5, 1]]}}},
        {"lists": {"a": {"ranges": [[-1, 3]]}}},
        {"lists": {"a": {"ranges": [[0, 1]] * 101}}},
        {"lists": {f"l{i}": {} for i in range(101)}},
        {"lists": {"": {}}},
        {"lists": {"a": {"timeline_limit": -1}}},
        {"lists": {"a": {"required_state": [["t", str(i)] for i in range(300)]}}},
        {"room_subscriptions": {f"!r{i}:x": {} for i in range(501)}},
        {"conn_id": "x" * 300},
        {"extensions": {"to_device": {"enabled": True, "limit": -5}}},
    ],
)
def test_bad_sizes_and_ranges_are_invalid_param(body: Any) -> None:
    assert errcode(body) == "M_INVALID_PARAM"


@pytest.mark.parametrize(
    "body",
    [
        {"lists": {"a": {"ranges": [[0]]}}},
        {"lists": {"a": {"ranges": "0-19"}}},
        {"lists": {"a": {"timeline_limit": "5"}}},
        {"lists": {"a": {"required_state": [["only-type"]]}}},
        {"lists": ["a"]},
        {"extensions": {"e2ee": {"enabled": "yes"}}},
        [],
    ],
)
def test_malformed_bodies_are_bad_json(body: Any) -> None:
    assert errcode(body) == "M_BAD_JSON"


def test_timeline_limit_is_capped() -> None:
    request = parse_unstable({"lists": {"a": {"timeline_limit": 10**9}}}, ME)
    assert request.lists["a"].config.timeline_limit == 100


def test_stable_shape() -> None:
    body, request = parse_stable(
        {
            "conn_id": "c",
            "pos": "5",
            "timeout": 100,
            "lists": {
                "a": {
                    "range": [0, 9],
                    "timeline_limit": 3,
                    "required_state": {"include": [{}], "exclude": [{"type": "m.room.create"}]},
                    "filters": {"is_invited": False},
                }
            },
            "room_subscriptions": {"!r:x": {"timeline_limit": 2}},
        },
        ME,
    )
    assert body.pos == "5" and body.timeout == 100
    spec = request.lists["a"]
    assert spec.ranges == ((0, 9),)
    assert spec.filters.invited is False
    assert spec.config.matches("m.room.name", "")
    assert not spec.config.matches("m.room.create", "")
    assert request.subscriptions["!r:x"].timeline_limit == 2
    unranged = parse_stable({"lists": {"a": {"timeline_limit": 1}}}, ME)[1]
    assert unranged.lists["a"].ranges is None
    assert errcode({"timeout": -1}, stable=True) == "M_INVALID_PARAM"
    assert errcode({"set_presence": "busy"}, stable=True) == "M_BAD_JSON"


def test_computed_names() -> None:
    alice = {"user_id": "@a:x", "displayname": "Alice"}
    bob = {"user_id": "@b:x"}
    assert computed_name([], 1) == "Empty Room"
    assert computed_name([alice], 2) == "Alice"
    assert computed_name([alice, bob], 3) == "Alice and @b:x"
    assert computed_name([alice, bob], 10) == "Alice, @b:x and 7 others"
