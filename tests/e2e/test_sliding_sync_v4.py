"""The accepted MSC4186 shape, POST /_matrix/client/v4/sync, on the same engine."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e._rooms_server import RoomsClient, bodies, message, new_client
from tests.e2e.matrix import expect

V4 = "/_matrix/client/v4/sync"

REQUIRED_STATE = {
    "include": [
        {"type": "m.room.name", "state_key": ""},
        {"type": "m.room.create", "state_key": ""},
        {"type": "m.room.member", "state_key": "$ME"},
    ],
    "lazy_members": True,
}


def v4(client: RoomsClient, body: dict[str, Any], status: int = 200) -> Any:
    return expect(client.http.post(V4, json=body, headers=client.user.headers), status)


def list_body(**extra: Any) -> dict[str, Any]:
    return {
        "conn_id": "v4",
        "lists": {"all": {"range": [0, 19], "timeline_limit": 1, "required_state": REQUIRED_STATE}},
        **extra,
    }


def test_v4_initial_and_incremental(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(name="stable", invite=[bob.user_id])
    bob.join(room)
    alice.send(room, message("first"))
    first = v4(bob, list_body())
    assert first["lists"] == {"all": {"count": 1}}
    entry = first["rooms"][room]
    assert entry["initial"] is True
    assert entry["lists"] == ["all"]
    assert entry["name"] == "stable"
    assert bodies(entry["timeline_events"]) == ["first"]
    assert "timeline" not in entry
    assert "notification_count" not in entry and "unread_notifications" not in entry
    types = {(e["type"], e["state_key"]) for e in entry["required_state"]}
    assert types == {
        ("m.room.name", ""),
        ("m.room.create", ""),
        ("m.room.member", bob.user_id),
        ("m.room.member", alice.user_id),  # lazy: the timeline's sender
    }
    alice.send(room, message("second"))
    update = v4(bob, list_body(pos=first["pos"], timeout=5000))
    assert bodies(update["rooms"][room]["timeline_events"]) == ["second"]
    # The sender's member event was sent already: not again.
    assert update["rooms"][room]["required_state"] == []
    quiet = v4(bob, list_body(pos=update["pos"], timeout=0))
    assert quiet["pos"] == update["pos"] and quiet["rooms"] == {}


def test_v4_exclude_unranged_list_and_stripped_state(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    joined = alice.create_room(name="in", invite=[bob.user_id])
    bob.join(joined)
    invited = alice.create_room(name="invited", invite=[bob.user_id])
    body = {
        "lists": {
            "invites": {
                "timeline_limit": 0,
                "required_state": {},
                "filters": {"is_invited": True},
            },
            "everything": {
                "timeline_limit": 0,
                "required_state": {"include": [{}], "exclude": [{"type": "m.room.create"}]},
                "filters": {"is_invited": False},
            },
        }
    }
    result = v4(bob, body)
    assert result["lists"] == {"invites": {"count": 1}, "everything": {"count": 1}}
    assert result["rooms"][invited]["lists"] == ["invites"]
    stripped = {e["type"] for e in result["rooms"][invited]["stripped_state"]}
    assert "m.room.name" in stripped
    types = {e["type"] for e in result["rooms"][joined]["required_state"]}
    assert "m.room.power_levels" in types and "m.room.member" in types
    assert "m.room.create" not in types


def test_v4_bad_input(http: httpx.Client) -> None:
    alice = new_client(http)
    expect(
        alice.http.post(V4, json={"pos": "12345678"}, headers=alice.user.headers),
        400,
        "M_UNKNOWN_POS",
    )
    for body in (
        {"lists": {"a": {"range": [3, 1], "timeline_limit": 1}}},
        {"timeout": -5},
    ):
        expect(alice.http.post(V4, json=body, headers=alice.user.headers), 400, "M_INVALID_PARAM")
    for body in (
        {"lists": {"a": {"ranges": "x", "range": [0], "timeline_limit": 1}}},
        {"lists": {"a": {"required_state": [["m.room.name", ""]]}}},
        {"set_presence": "sleeping"},
    ):
        expect(alice.http.post(V4, json=body, headers=alice.user.headers), 400, "M_BAD_JSON")
