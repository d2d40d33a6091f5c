"""An initial /sync reads what it needs of the rooms it sends whole together, a chunk of
rooms at a time (sync/whole_rooms.py); its answer must be exactly what reading each room
alone gives.

The rooms are made over HTTP on the real server; the two ways are then computed from
its database file, in this process, with the sync code itself. They cover what the
reads decide: member counts, names (a name, an alias, a name emptied later), heroes,
history visibility where the user joined late, a visibility changed mid-history, and a
state change inside the timeline (its start is not the room's current state).
"""

from __future__ import annotations

from typing import Any

import apsw
import httpx
import msgspec
import pytest

from dendrite_lite.app import build_services
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.config import load
from dendrite_lite.filters import decode_filter
from dendrite_lite.sync import whole_rooms
from dendrite_lite.sync.shaping import Shaper
from tests.e2e._rooms_server import RoomsClient, bodies, message
from tests.e2e.harness import Server, database_snapshot
from tests.e2e.matrix import User, register_user, unique

HISTORY = "m.room.history_visibility"
FILTERS = [
    {},
    {"room": {"timeline": {"limit": 2}}},
    {"room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": True}}},
    # The newest events do not fill it: the timeline reads on past what was read ahead.
    {"room": {"timeline": {"limit": 1, "types": ["m.room.topic", "m.room.create"]}}},
    {"room": {"timeline": {"limit": 60}}},  # too long to be read ahead
]


def _history(visibility: str) -> dict[str, Any]:
    return {"type": HISTORY, "state_key": "", "content": {"history_visibility": visibility}}


def _rooms(alice: RoomsClient, bob: RoomsClient, carol: RoomsClient) -> dict[str, str]:
    rooms = {
        "named": alice.create_room(preset="public_chat", name="Named"),
        "alias": alice.create_room(preset="public_chat", room_alias_name=unique("alias")),
        "emptied": alice.create_room(preset="public_chat", name="Soon no name"),
        "unnamed": alice.create_room(preset="public_chat"),
        "joined_late": alice.create_room(preset="public_chat", initial_state=[_history("joined")]),
        "changed": alice.create_room(preset="public_chat"),
        "state_in_timeline": alice.create_room(preset="public_chat", name="Topics"),
    }
    alice.set_state(rooms["emptied"], "m.room.name", {"name": ""})
    alice.send(rooms["joined_late"], message("before bob"))
    alice.send(rooms["changed"], message("shared, before the change"))
    alice.set_state(rooms["changed"], HISTORY, {"history_visibility": "joined"})
    alice.send(rooms["changed"], message("joined, before bob"))
    alice.invite(rooms["unnamed"], carol.user_id)
    for room_id in rooms.values():
        bob.join(room_id)
        alice.send(room_id, message("after bob"))
    alice.set_state(rooms["state_in_timeline"], "m.room.topic", {"topic": "new"})
    bob.send(rooms["state_in_timeline"], message("after the topic"))
    # Relations to bundle in one room: a thread with an edited reply, and an edit.
    root = alice.send(rooms["named"], message("thread root"))
    reply = bob.send(rooms["named"], message("reply", **{"m.relates_to": _thread(root)}))
    bob.send(rooms["named"], message("* reply", **_edit(reply, "reply, edited")))
    bob.send(rooms["named"], message("reply 2", **{"m.relates_to": _thread(root)}))
    typo = alice.send(rooms["named"], message("tpyo"))
    alice.send(rooms["named"], message("* typo", **_edit(typo, "typo")))
    rooms["thread_root"] = root
    return rooms


def _thread(root: str) -> dict[str, Any]:
    return {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}


def _edit(event_id: str, body: str) -> dict[str, Any]:
    return {
        "m.new_content": message(body),
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }


def _initial_sync(
    data_dir: Any,
    conn: apsw.Connection,
    user: User,
    sync_filter: dict[str, Any],
    use_state_after: bool,
) -> Any:
    services = build_services(load(data_dir))
    parsed = decode_filter(msgspec.json.encode(sync_filter))
    computed = services.sync_service._compute(
        conn,
        requester=Requester(user.user_id, user.device_id, False, False, b""),
        token=None,
        full_state=False,
        sync_filter=parsed,
        shaper=Shaper(parsed),
        typing_serial=services.typing_notifications.serial,
        use_state_after=use_state_after,
    )
    response = msgspec.json.decode(msgspec.json.encode(computed.response))
    response.pop("presence", None)  # last_active_ago moves between the two reads
    return _without_age(response)


def _without_age(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_age(v) for k, v in value.items() if k != "age"}
    if isinstance(value, list):
        return [_without_age(v) for v in value]
    return value


@pytest.mark.parametrize("use_state_after", [False, True])
def test_rooms_read_together_give_what_rooms_read_alone_give(
    server: Server, http: httpx.Client, monkeypatch: pytest.MonkeyPatch, use_state_after: bool
) -> None:
    alice, bob, carol = (RoomsClient(http, register_user(http)) for _ in range(3))
    rooms = _rooms(alice, bob, carol)
    thread_root = rooms.pop("thread_root")
    for user in (alice.user, bob.user):
        for sync_filter in FILTERS:
            monkeypatch.setattr(whole_rooms, "CHUNK", 3)  # chunk after chunk
            monkeypatch.setattr(whole_rooms, "MAX_MEMBERS", 2)  # "unnamed" is large
            with database_snapshot(server.data_dir) as conn:
                together = _initial_sync(server.data_dir, conn, user, sync_filter, use_state_after)
                monkeypatch.setattr(whole_rooms.WholeRooms, "get", lambda self, room_id: None)
                alone = _initial_sync(server.data_dir, conn, user, sync_filter, use_state_after)
            monkeypatch.undo()
            assert together == alone
            joined = together["rooms"]["join"]
            assert set(rooms.values()) <= set(joined)

    # And what both give is right.
    with database_snapshot(server.data_dir) as conn:
        joined = _initial_sync(server.data_dir, conn, bob.user, {}, use_state_after)["rooms"][
            "join"
        ]
    timeline = {name: joined[room_id]["timeline"]["events"] for name, room_id in rooms.items()}
    assert "before bob" not in bodies(timeline["joined_late"])
    assert bodies(timeline["changed"]) == ["shared, before the change", "after bob"]
    assert bodies(timeline["state_in_timeline"])[-1] == "after the topic"
    bundled = {
        event["event_id"]: event["unsigned"].get("m.relations", {}) for event in timeline["named"]
    }
    assert bundled[thread_root]["m.thread"]["count"] == 2
    assert [r for r in bundled.values() if "m.replace" in r]  # the edited message
    summary = {name: joined[room_id]["summary"] for name, room_id in rooms.items()}
    assert "m.heroes" not in summary["named"] and "m.heroes" not in summary["alias"]
    assert summary["emptied"]["m.heroes"] == [alice.user_id]
    assert summary["unnamed"] == {
        "m.joined_member_count": 2,
        "m.invited_member_count": 1,
        "m.heroes": [alice.user_id, carol.user_id],
    }
