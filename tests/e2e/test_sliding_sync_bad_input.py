"""Sliding sync bad input over raw HTTP: Matrix errors, never a 500, never unbounded work."""

from __future__ import annotations

import httpx

from tests.e2e._rooms_server import message, new_client
from tests.e2e.matrix import expect
from tests.e2e.test_sliding_sync import PATH, room_list_body, ss, ss_raw


def test_malformed_bodies(http: httpx.Client) -> None:
    alice = new_client(http)
    headers = {**alice.user.headers, "Content-Type": "application/json"}
    expect(http.post(PATH, content=b"{not json", headers=headers), 400, "M_NOT_JSON")
    for body in (
        [],
        {"lists": {"a": {"ranges": [[0]]}}},
        {"lists": {"a": {"ranges": [[0, "19"]]}}},
        {"lists": {"a": {"required_state": "m.room.name"}}},
        {"room_subscriptions": {"!r:x": {"timeline_limit": 1.5}}},
        {"extensions": {"to_device": {"since": 5}}},
    ):
        expect(ss_raw(alice, body), 400, "M_BAD_JSON")
    expect(http.post(PATH, json={}), 401, "M_MISSING_TOKEN")


def test_ranges_and_sizes(http: httpx.Client) -> None:
    alice = new_client(http)
    rooms = [alice.create_room() for _ in range(3)]
    expect(ss_raw(alice, {"lists": {"a": {"ranges": [[9, 0]]}}}), 400, "M_INVALID_PARAM")
    expect(ss_raw(alice, {"lists": {"a": {"ranges": [[-1, 0]]}}}), 400, "M_INVALID_PARAM")
    too_much_state = [["t", str(i)] for i in range(1000)]
    expect(
        ss_raw(alice, {"lists": {"a": {"ranges": [[0, 1]], "required_state": too_much_state}}}),
        400,
        "M_INVALID_PARAM",
    )
    # A huge range costs no more than the user's rooms; a huge limit is capped.
    body = ss(alice, {"lists": {"a": {"ranges": [[0, 2**53]], "timeline_limit": 10**12}}})
    assert body["lists"]["a"]["count"] == 3
    assert set(body["rooms"]) == set(rooms)
    expect(ss_raw(alice, room_list_body(), timeout=-1), 400, "M_INVALID_PARAM")
    expect(ss_raw(alice, room_list_body(), set_presence="busy"), 400)
    # Filters from other drafts are ignored, not errors.
    ok = ss(alice, {"lists": {"a": {"ranges": [[0, 9]], "filters": {"is_tombstoned": False}}}})
    assert ok["lists"]["a"]["count"] == 3


def test_pos_of_another_users_conn_id_is_unknown(http: httpx.Client) -> None:
    alice, mallory = new_client(http), new_client(http)
    room = alice.create_room()
    pos = ss(alice, room_list_body())["pos"]
    alice.send(room, message("secret"))
    expect(ss_raw(mallory, room_list_body(), pos), 400, "M_UNKNOWN_POS")
    # Alice's connection is untouched by the attempt.
    update = ss(alice, room_list_body(), pos)
    assert room in update["rooms"]


def test_to_device_since_must_be_a_token(http: httpx.Client) -> None:
    alice = new_client(http)
    body = {"conn_id": "e", "extensions": {"to_device": {"enabled": True, "since": "abc"}}}
    expect(ss_raw(alice, body), 400, "M_INVALID_PARAM")
