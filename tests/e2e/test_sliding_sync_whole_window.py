"""Element X's steady state: a room-list connection whose window holds every room.

A woken request there skips the rooms the previous answer left settled and that had no
event since, without checking each (sliding_sync/connections.Settled). These tests make
sure that nothing that must reach the client is skipped: each step changes one thing,
and the answer must carry exactly the rooms it concerns, with the right fields, however
many answers went before. The last test counts, in this process, which rooms a woken
computation looked at.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dendrite_lite.app import build_services
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.config import load
from dendrite_lite.sliding_sync import room_results
from dendrite_lite.sliding_sync.requests import parse_unstable
from tests.e2e._rooms_server import RoomsClient, bodies, message, new_client, q
from tests.e2e.harness import Server, database_snapshot
from tests.e2e.matrix import expect
from tests.e2e.test_sliding_sync import room_list_body, ss
from tests.e2e.test_sliding_sync_features import set_direct

ROOMS = 8


def _rooms(alice: RoomsClient, bob: RoomsClient) -> list[str]:
    rooms = []
    for n in range(ROOMS):
        room = alice.create_room(name=f"room {n}", invite=[bob.user_id])
        bob.join(room)
        alice.send(room, message(f"first in {n}"))
        rooms.append(room)
    return rooms


def _timeline(answer: dict[str, Any], room: str) -> list[str]:
    return bodies(answer["rooms"][room].get("timeline", []))


def test_every_step_reaches_a_whole_window_connection(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    rooms = _rooms(alice, bob)
    body = room_list_body(end=99)
    answer = ss(alice, body)
    assert set(answer["rooms"]) == set(rooms)
    pos = answer["pos"]

    def step(expected: set[str], request: dict[str, Any] = body) -> dict[str, Any]:
        nonlocal pos
        found = ss(alice, request, pos)
        assert set(found["rooms"]) == expected, found["rooms"].keys()
        pos = found["pos"]
        return found

    # Messages into one room after another: each answer holds that room only.
    for n in (1, 2, 1, 5):
        bob.send(rooms[n], message(f"news {n}"))
        found = step({rooms[n]})
        assert _timeline(found, rooms[n]) == [f"news {n}"]
        assert "initial" not in found["rooms"][rooms[n]]

    # Nothing new: the same pos back, no rooms.
    quiet = ss(alice, body, pos)
    assert quiet["pos"] == pos and not quiet.get("rooms")

    # m.direct names a room: it comes back with is_dm, and only it.
    set_direct(alice, {bob.user_id: [rooms[3]]})
    found = step({rooms[3]})
    assert found["rooms"][rooms[3]]["is_dm"] is True
    bob.send(rooms[6], message("after the DM"))
    step({rooms[6]})
    # ... and stops naming it.
    set_direct(alice, {})
    found = step({rooms[3]})
    assert found["rooms"][rooms[3]]["is_dm"] is False

    # Read on another device: the room comes back with its counts, no events.
    bob.send(rooms[4], message("unread"))
    step({rooms[4]})
    other = alice.other_device()
    event_id = bob.send(rooms[4], message("read elsewhere"))
    step({rooms[4]})
    expect(
        other.request("POST", f"/rooms/{q(rooms[4])}/receipt/m.read/{q(event_id)}", json={}),
        200,
    )
    found = step({rooms[4]})
    assert found["rooms"][rooms[4]]["notification_count"] == 0
    assert found["rooms"][rooms[4]]["timeline"] == []

    # A longer timeline asked for: every room comes back, expanded.
    longer = room_list_body(end=99)
    longer["lists"]["all_rooms"]["timeline_limit"] = 3
    found = step(set(rooms), longer)
    assert all(found["rooms"][r].get("unstable_expanded_timeline") for r in rooms)
    bob.send(rooms[0], message("with the longer timeline"))
    step({rooms[0]}, longer)

    # An invite: a new room in the list, sent whole.
    invited = bob.create_room(name="invite", invite=[alice.user_id])
    found = step({invited}, longer)
    assert found["rooms"][invited]["membership"] == "invite"
    # Leaving a room: it comes back with the leave.
    alice.leave(rooms[7])
    found = step({rooms[7]}, longer)
    assert found["rooms"][rooms[7]]["membership"] == "leave"
    # Joining the invited room: sent whole again, as a join.
    alice.join(invited)
    found = step({invited}, longer)
    assert found["rooms"][invited]["membership"] == "join"
    assert found["rooms"][invited]["initial"] is True

    # The user opens a room (a subscription asking for more): it alone comes back, with
    # the longer timeline; messages elsewhere still come alone; closing it sends nothing.
    opened = dict(longer, room_subscriptions={rooms[6]: {"timeline_limit": 5}})
    found = step({rooms[6]}, opened)
    assert found["rooms"][rooms[6]].get("unstable_expanded_timeline") is True
    assert len(found["rooms"][rooms[6]]["timeline"]) == 5
    bob.send(rooms[1], message("while open"))
    step({rooms[1]}, opened)
    bob.send(rooms[6], message("in the open room"))
    found = step({rooms[6]}, opened)
    assert _timeline(found, rooms[6]) == ["in the open room"]
    closed = ss(alice, longer, pos)
    assert not closed.get("rooms")
    pos = closed["pos"]

    # And messages still come one room at a time.
    for n in (2, 0):
        bob.send(rooms[n], message(f"last {n}"))
        found = step({rooms[n]}, longer)
        assert _timeline(found, rooms[n]) == [f"last {n}"]


def test_a_woken_whole_window_looks_only_at_the_rooms_that_changed(
    server: Server, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = new_client(http), new_client(http)
    rooms = _rooms(alice, bob)
    # The engine alone, on its own memory (build_services opens nothing), reading the
    # running server's file.
    engine = build_services(load(server.data_dir)).sliding_sync
    engine.connections.start_numbering(0, 0, 1)
    requester = Requester(alice.user_id, alice.user.device_id, False, False, b"")
    request = parse_unstable(room_list_body(end=99), alice.user_id)
    key = (alice.user_id, alice.user.device_id, request.conn_id)
    looked_at: list[str] = []
    for name in ("settled", "build"):
        real = getattr(room_results, name)

        def counting(ctx: Any, row: Any, *rest: Any, _real: Any = real, _name: str = name) -> Any:
            looked_at.append(f"{_name} {row.room_id}")
            return _real(ctx, row, *rest)

        monkeypatch.setattr(room_results, name, counting)

    def looked_at_rooms() -> set[str]:
        return {entry.split()[1] for entry in looked_at}

    def answer(base: Any) -> Any:
        looked_at.clear()
        with database_snapshot(server.data_dir) as conn:
            computed = engine._compute(
                conn,
                requester=requester,
                request=request,
                base=base,
                load_pos=None,
                need_numbers=False,
            )
        pos_nid = engine._record(key, base, computed, 0)
        return computed, engine.connections.find(key, pos_nid)

    computed, base = answer(None)
    assert set(computed.rooms) == set(rooms)
    bob.send(rooms[2], message("one"))
    computed, base = answer(base)
    # The first woken answer checks every room once: the initial one left them settled,
    # and every room but the one with news is settled still.
    assert set(computed.rooms) == {rooms[2]}
    bob.send(rooms[5], message("two"))
    computed, base = answer(base)
    assert set(computed.rooms) == {rooms[5]}
    assert looked_at_rooms() == {rooms[5]}
    # m.direct changed: every room is checked again (its is_dm may have changed).
    set_direct(alice, {bob.user_id: [rooms[1]]})
    computed, base = answer(base)
    assert set(computed.rooms) == {rooms[1]}
    assert looked_at_rooms() == set(rooms)
    bob.send(rooms[3], message("three"))
    computed, base = answer(base)
    assert set(computed.rooms) == {rooms[3]}
    assert looked_at_rooms() == {rooms[3]}
