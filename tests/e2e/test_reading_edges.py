"""Edges of reading a room: members at a point before the room, departed users' pages."""

from __future__ import annotations

import httpx

from tests.e2e._rooms_server import bodies, message, new_client


def test_members_at_a_point_before_the_room_existed_is_empty(http: httpx.Client) -> None:
    alice = new_client(http, "edge")
    room = alice.create_room()
    assert alice.members(room, at="s0")["chunk"] == []
    assert [m["state_key"] for m in alice.members(room)["chunk"]] == [alice.user_id]


def test_departed_user_pages_from_their_leave(http: httpx.Client) -> None:
    alice, bob = new_client(http, "edge"), new_client(http, "edge")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    alice.send(room, message("before"))
    bob.leave(room)
    for i in range(30):
        alice.send(room, message(f"after {i}"))
    page = bob.messages(room, dir="b", limit=5)
    seen = bodies(page["chunk"])
    assert "before" in seen
    assert not any(body.startswith("after") for body in seen)
    # The page starts at the leave, not at the room's newest event.
    assert page["chunk"][0]["type"] == "m.room.member"
    assert page["chunk"][0]["content"]["membership"] == "leave"
