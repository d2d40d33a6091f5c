"""The idle fast path of both long-polls: a client that polls again with the token (or pos)
it was just given, the same filter (or request), waits at once instead of computing an
answer that would be empty. These tests pin what must still hold: a change between the
answer and the next poll is answered at once, a changed request is answered at once,
to-device messages are acknowledged, and a change during the wait wakes it."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from tests.e2e._rooms_server import RoomsClient, bodies, message, new_client, txn
from tests.e2e.harness import Server
from tests.e2e.test_sliding_sync import room_list_body, ss
from tests.e2e.test_sync import sync, timeline

FILTER = {"room": {"timeline": {"limit": 10}}}


def in_background(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        out["body"] = fn()
        out["took"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_sync_change_between_answer_and_next_poll_is_answered_at_once(
    http: httpx.Client,
) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    token = sync(bob, filter=FILTER)["next_batch"]
    token = sync(bob, token, filter=FILTER, timeout=100)["next_batch"]  # idle: remembered
    alice.send(room, message("between polls"))
    started = time.monotonic()
    body = sync(bob, token, filter=FILTER, timeout=20_000)
    assert time.monotonic() - started < 5
    assert bodies(timeline(body, room)) == ["between polls"]


def test_sync_idle_poll_waits_and_wakes_on_a_message(http: httpx.Client, server: Server) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    token = sync(bob, filter=FILTER)["next_batch"]

    def poll() -> Any:
        with server.client() as other:
            return sync(RoomsClient(other, bob.user), token, filter=FILTER, timeout=20_000)

    thread, out = in_background(poll)
    time.sleep(0.5)
    assert thread.is_alive()  # nothing new: it waits
    alice.send(room, message("wake up"))
    thread.join(30)
    assert bodies(timeline(out["body"], room)) == ["wake up"]
    assert out["took"] < 10


def test_sync_idle_poll_times_out_with_a_full_answer(http: httpx.Client) -> None:
    bob = new_client(http)
    token = sync(bob, filter=FILTER)["next_batch"]
    started = time.monotonic()
    body = sync(bob, token, filter=FILTER, timeout=400)
    assert time.monotonic() - started >= 0.35
    # Computed, not a stand-in: key counts are always there
    assert "device_one_time_keys_count" in body
    assert body["next_batch"]


def test_sync_to_device_is_acknowledged_by_the_next_poll(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    token = sync(bob, filter=FILTER)["next_batch"]
    alice.call(
        "PUT",
        f"/sendToDevice/m.test/{txn()}",
        json={"messages": {bob.user_id: {bob.user.device_id: {"n": 1}}}},
    )
    body = sync(bob, token, filter=FILTER, timeout=5000)
    assert [e["content"] for e in body["to_device"]["events"]] == [{"n": 1}]
    token = body["next_batch"]
    # The next poll acknowledges it: never delivered again, also not after a restart of
    # the sequence from the same token.
    body = sync(bob, token, filter=FILTER, timeout=300)
    assert body["to_device"]["events"] == []
    body = sync(bob, token, filter=FILTER, timeout=0)
    assert body["to_device"]["events"] == []


def test_sync_other_filter_is_computed_at_once(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    token = sync(bob, filter=FILTER)["next_batch"]
    started = time.monotonic()
    # full_state with the same token answers at once with the room's state
    body = sync(bob, token, filter=FILTER, timeout=10_000, full_state="true")
    assert time.monotonic() - started < 5
    assert room in body["rooms"]["join"]


def test_sliding_sync_changed_request_is_answered_at_once(http: httpx.Client) -> None:
    alice = new_client(http)
    rooms = [alice.create_room(name=f"room {i}") for i in range(3)]
    pos = ss(alice, room_list_body(end=0))["pos"]
    pos = ss(alice, room_list_body(end=0), pos, timeout=100)["pos"]  # idle: remembered
    started = time.monotonic()
    body = ss(alice, room_list_body(end=2), pos, timeout=20_000)
    assert time.monotonic() - started < 5
    assert set(body["rooms"]) == set(rooms[:2])  # the window grew by two rooms


def test_sliding_sync_change_between_answer_and_next_poll(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    pos = ss(bob, room_list_body())["pos"]
    pos = ss(bob, room_list_body(), pos, timeout=100)["pos"]
    alice.send(room, message("between polls"))
    started = time.monotonic()
    body = ss(bob, room_list_body(txn_id="t2"), pos, timeout=20_000)
    assert time.monotonic() - started < 5
    assert bodies(body["rooms"][room]["timeline"]) == ["between polls"]
    assert body["txn_id"] == "t2"


def test_sliding_sync_idle_poll_waits_then_wakes(http: httpx.Client, server: Server) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    pos = ss(bob, room_list_body())["pos"]

    def poll() -> Any:
        with server.client() as other:
            return ss(RoomsClient(other, bob.user), room_list_body(txn_id="x"), pos, 20_000)

    thread, out = in_background(poll)
    time.sleep(0.5)
    assert thread.is_alive()
    alice.send(room, message("wake"))
    thread.join(30)
    assert bodies(out["body"]["rooms"][room]["timeline"]) == ["wake"]
    assert out["took"] < 10
    assert out["body"]["txn_id"] == "x"


def test_a_fan_outs_members_get_its_message_and_the_next(
    http: httpx.Client, server: Server
) -> None:
    """A message that wakes more long-polls than notifier.FAN_OUT is read in the
    background, and the connections it answers are not read from again until its other
    answers are out (dendrite_lite/fan_out.py). A second message sent meanwhile must
    still reach every member, over the same keep-alive connections, half of them on
    /sync and half on sliding sync."""
    alice = new_client(http)
    room = alice.create_room(preset="public_chat")
    members = [new_client(http) for _ in range(20)]
    for member in members:
        member.join(room)
    ready = threading.Barrier(len(members) + 1)

    def follow(member: RoomsClient, sliding: bool) -> list[str]:
        seen: list[str] = []
        with server.client() as own:
            client = RoomsClient(own, member.user)
            if sliding:
                pos = ss(client, room_list_body())["pos"]
            else:
                token = sync(client, filter=FILTER)["next_batch"]
            ready.wait(30)
            for _ in range(5):
                if sliding:
                    body = ss(client, room_list_body(), pos, 20_000)
                    pos = body["pos"]
                    seen += bodies(body.get("rooms", {}).get(room, {}).get("timeline", []))
                else:
                    body = sync(client, token, filter=FILTER, timeout=20_000)
                    token = body["next_batch"]
                    joined = body.get("rooms", {}).get("join", {})  # others' presence too
                    seen += bodies(joined.get(room, {}).get("timeline", {}).get("events", []))
                if "second" in seen:
                    break
        return seen

    threads = [
        in_background(lambda m=member, s=i % 2 == 0: follow(m, s))
        for i, member in enumerate(members)
    ]
    ready.wait(30)
    time.sleep(0.5)  # every member's long-poll is waiting
    alice.send(room, message("first"))
    alice.send(room, message("second"))  # while the first one's answers go out
    for thread, _out in threads:
        thread.join(60)
    for i, (_thread, out) in enumerate(threads):
        if i % 2:
            assert out["body"] == ["first", "second"]
        else:  # timeline_limit 1: both in one answer show the second alone
            assert out["body"] in (["first", "second"], ["second"])
