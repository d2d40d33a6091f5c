"""ParsedBodies: sliding sync requests parsed once per body (txn_id aside) and user."""

from __future__ import annotations

import dataclasses

import pytest

from dendrite_lite.api.fast_lane import PARSED_BODY_MAX_BYTES, ParsedBodies
from dendrite_lite.errors import MatrixError
from dendrite_lite.sliding_sync.requests import parse_unstable

BODY = {
    "conn_id": "room-list",
    "lists": {"all": {"ranges": [[0, 9]], "required_state": [["m.room.member", "$ME"]]}},
}


def test_a_body_is_parsed_once_per_user_whatever_its_txn_id() -> None:
    bodies = ParsedBodies(8)
    first, first_txn = bodies.parse({**BODY, "txn_id": "1"}, "@a:x")
    again, again_txn = bodies.parse({**BODY, "txn_id": "2"}, "@a:x")
    assert (first_txn, again_txn) == ("1", "2")
    # the same parse underneath, kept without its txn_id
    assert again is first and first.txn_id is None
    assert bodies.parse(dict(BODY), "@a:x") == (first, None)
    other, other_txn = bodies.parse({**BODY, "txn_id": "3"}, "@b:x")
    assert other.lists is not first.lists and other_txn == "3"
    assert other == dataclasses.replace(
        parse_unstable({**BODY, "txn_id": "3"}, "@b:x"), txn_id=None
    )
    assert first == parse_unstable(dict(BODY), "@a:x")


def test_a_body_too_large_to_keep_still_gives_its_txn_id_apart() -> None:
    big = {"conn_id": "x", "txn_id": "t", "unknown": "y" * PARSED_BODY_MAX_BYTES}
    request, txn_id = ParsedBodies(2).parse(big, "@a:x")
    assert (request.conn_id, request.txn_id, txn_id) == ("x", None, "t")


def test_errors_are_those_of_a_parse_every_time() -> None:
    bodies = ParsedBodies(8)
    bodies.parse(dict(BODY), "@a:x")
    for bad in ({**BODY, "txn_id": 5}, {"lists": {"all": {"ranges": [[9, 0]]}}}, [1]):
        for _ in range(2):
            with pytest.raises(MatrixError) as caught:
                bodies.parse(bad, "@a:x")
            with pytest.raises(MatrixError) as expected:
                parse_unstable(bad, "@a:x")
            assert caught.value.errcode == expected.value.errcode


def test_bodies_are_bounded_in_number_and_size() -> None:
    bodies = ParsedBodies(2)
    first, _ = bodies.parse({"conn_id": "1"}, "@a:x")
    bodies.parse({"conn_id": "2"}, "@a:x")
    assert bodies.parse({"conn_id": "1"}, "@a:x")[0] is first  # used last: kept
    bodies.parse({"conn_id": "3"}, "@a:x")
    assert bodies.parse({"conn_id": "1"}, "@a:x")[0] is first
    assert len(bodies._bodies) == 2
    big = {"conn_id": "x", "unknown": "y" * PARSED_BODY_MAX_BYTES}
    assert bodies.parse(big, "@a:x")[0] is not bodies.parse(big, "@a:x")[0]
    assert len(bodies._bodies) == 2
