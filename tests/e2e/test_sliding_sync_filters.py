"""Sliding sync list filters (MSC4186 SlidingRoomFilter): is_dm, is_encrypted, is_invite,
room_types / not_room_types, tags / not_tags, spaces; and kicked rooms stay listed."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e._rooms_server import message, new_client
from tests.e2e.test_sliding_sync import ss


def listed(client: Any, filters: dict[str, Any]) -> set[str]:
    body = ss(
        client,
        {
            "conn_id": "filters",
            "lists": {"f": {"ranges": [[0, 99]], "timeline_limit": 0, "filters": filters}},
        },
    )
    return set(body["lists"]["f"]["ops"][0]["room_ids"]) if body["lists"]["f"]["count"] else set()


def test_list_filters(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    dm = alice.create_room(is_direct=True, invite=[bob.user_id])
    alice.call("PUT", f"/user/{alice.user_id}/account_data/m.direct", json={bob.user_id: [dm]})
    encrypted = alice.create_room(
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ]
    )
    space = alice.create_room(name="space", creation_content={"type": "m.space"})
    child = alice.create_room(name="child")
    alice.set_state(space, "m.space.child", {"via": ["localhost"]}, child)
    tagged = alice.create_room(name="tagged")
    alice.call("PUT", f"/user/{alice.user_id}/rooms/{tagged}/tags/m.favourite", json={"order": 0.5})
    invited = bob.create_room(invite=[alice.user_id])
    everything = {dm, encrypted, space, child, tagged, invited}

    assert listed(alice, {}) == everything
    assert listed(alice, {"is_dm": True}) == {dm}
    assert listed(alice, {"is_dm": False}) == everything - {dm}
    assert listed(alice, {"is_encrypted": True}) == {encrypted}
    assert encrypted not in listed(alice, {"is_encrypted": False})
    assert listed(alice, {"is_invite": True}) == {invited}
    assert invited not in listed(alice, {"is_invite": False})
    assert listed(alice, {"room_types": ["m.space"]}) == {space}
    assert listed(alice, {"not_room_types": ["m.space"]}) == everything - {space}
    assert space not in listed(alice, {"room_types": [None]})
    assert listed(alice, {"tags": ["m.favourite"]}) == {tagged}
    assert tagged not in listed(alice, {"not_tags": ["m.favourite"]})
    assert listed(alice, {"spaces": [space]}) == {child}
    assert listed(alice, {"spaces": ["!unknown:localhost"]}) == set()


def test_kicked_rooms_stay_listed_and_left_rooms_only_if_sent(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    kicked = alice.create_room(invite=[bob.user_id])
    left = alice.create_room(invite=[bob.user_id])
    for room in (kicked, left):
        bob.join(room)
    first = ss(
        bob,
        {"conn_id": "k", "lists": {"a": {"ranges": [[0, 9]], "timeline_limit": 1}}},
    )
    assert {kicked, left} <= set(first["rooms"])
    alice.send(kicked, message("bye"))
    alice.member_action("kick", kicked, bob.user_id)
    bob.leave(left)
    update = ss(
        bob,
        {"conn_id": "k", "lists": {"a": {"ranges": [[0, 9]], "timeline_limit": 5}}},
        first["pos"],
    )
    assert update["rooms"][kicked]["membership"] == "leave"
    assert update["rooms"][left]["membership"] == "leave"
    # A new connection lists the kicked room but not the one bob left himself.
    fresh = ss(bob, {"conn_id": "k2", "lists": {"a": {"ranges": [[0, 9]], "timeline_limit": 1}}})
    assert kicked in fresh["rooms"]
    assert left not in fresh["rooms"]
