"""What /sync carries beside rooms' timelines, against the real server: typing (and its
expiry), receipts and read markers, presence and send-to-device messages, with
matrix-nio where it has the call and raw httpx for exact JSON and bad input."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import apsw
import httpx
from nio import (
    AsyncClient,
    PresenceGetResponse,
    PresenceSetResponse,
    ReceiptType,
    RoomReadMarkersResponse,
    RoomTypingResponse,
    SyncResponse,
    ToDeviceMessage,
    ToDeviceResponse,
    UnknownToDeviceEvent,
    UpdateReceiptMarkerResponse,
)
from nio.events.account_data import FullyReadEvent
from nio.events.ephemeral import Receipt, ReceiptEvent, TypingNoticeEvent

from tests.e2e import test_sync as shared
from tests.e2e._rooms_server import RoomsClient, message, new_client, q
from tests.e2e.harness import Server
from tests.e2e.test_sync import (
    NewNio,
    joined,
    nio_room,
    ok,
    room_with,
    send_text,
    sync,
)

# The nio fixtures of test_sync.py.
opened = shared.opened
new_nio = shared.new_nio


def ephemeral(body: dict[str, Any], room_id: str) -> dict[str, dict[str, Any]]:
    """The room's ephemeral events by type ({} when the room is absent)."""
    room = body["rooms"]["join"].get(room_id)
    if room is None:
        return {}
    return {e["type"]: e["content"] for e in room["ephemeral"]["events"]}


def receipts_of(response: SyncResponse, room_id: str) -> list[Receipt]:
    return [
        receipt
        for event in response.rooms.join[room_id].ephemeral
        if isinstance(event, ReceiptEvent)
        for receipt in event.receipts
    ]


async def settle(*clients: AsyncClient) -> None:
    """Sync everyone twice, so that their coming online is old news."""
    for _ in range(2):
        for client in clients:
            ok(await client.sync(timeout=0), SyncResponse)


# -- typing ------------------------------------------------------------------------------


async def test_typing_reaches_the_room_and_expires(new_nio: NewNio) -> None:
    alice, bob = await new_nio(), await new_nio()
    room_id = await nio_room(alice, bob)
    await settle(alice, bob)
    poll = asyncio.create_task(alice.sync(timeout=20_000))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    ok(await bob.room_typing(room_id, True, timeout=600), RoomTypingResponse)
    response = ok(await poll, SyncResponse)
    assert time.monotonic() - started < 3
    typing = [e for e in response.rooms.join[room_id].ephemeral if isinstance(e, TypingNoticeEvent)]
    assert typing[0].users == [bob.user_id]
    # Nothing new about typing: not sent again.
    quiet = ok(await alice.sync(timeout=0), SyncResponse)
    assert room_id not in quiet.rooms.join
    # The timeout runs out: a long-poll is woken with the emptied list.
    started = time.monotonic()
    expired = ok(await alice.sync(timeout=20_000), SyncResponse)
    assert time.monotonic() - started < 3
    typing = [e for e in expired.rooms.join[room_id].ephemeral if isinstance(e, TypingNoticeEvent)]
    assert typing[0].users == []


def test_typing_stop_renewal_and_initial_sync(http: httpx.Client) -> None:
    room, (alice, bob, carol) = room_with(http, 3)
    since = sync(alice)["next_batch"]
    path = f"/rooms/{q(room)}/typing/{quote(bob.user_id, safe='')}"
    bob.call("PUT", path, json={"typing": True, "timeout": 30_000})
    carol_path = f"/rooms/{q(room)}/typing/{quote(carol.user_id, safe='')}"
    carol.call("PUT", carol_path, json={"typing": True, "timeout": 30_000})
    body = sync(alice, since)
    assert ephemeral(body, room)["m.typing"] == {"user_ids": sorted([bob.user_id, carol.user_id])}
    # An initial sync shows who is typing now.
    assert ephemeral(sync(alice), room)["m.typing"]["user_ids"] == sorted(
        [bob.user_id, carol.user_id]
    )
    # Renewing changes nothing anyone sees.
    bob.call("PUT", path, json={"typing": True, "timeout": 30_000})
    renewed = sync(alice, body["next_batch"])
    assert "m.typing" not in ephemeral(renewed, room)
    bob.call("PUT", path, json={"typing": False})
    stopped = sync(alice, renewed["next_batch"])
    assert ephemeral(stopped, room)["m.typing"] == {"user_ids": [carol.user_id]}
    carol.call("PUT", carol_path, json={"typing": False})


def test_typing_bad_input(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    outsider = new_client(http, "sync")
    as_bob = f"/rooms/{q(room)}/typing/{quote(bob.user_id, safe='')}"
    alice.call("PUT", as_bob, 403, "M_FORBIDDEN", json={"typing": True, "timeout": 1000})
    mine = f"/rooms/{q(room)}/typing/{quote(outsider.user_id, safe='')}"
    outsider.call("PUT", mine, 403, "M_FORBIDDEN", json={"typing": True})
    own = f"/rooms/{q(room)}/typing/{quote(alice.user_id, safe='')}"
    alice.call("PUT", own, 400, "M_BAD_JSON", json={"typing": "yes"})
    alice.call("PUT", own, 400, "M_BAD_JSON", json={"timeout": 5})
    alice.call("PUT", own, 400, "M_INVALID_PARAM", json={"typing": True, "timeout": -1})
    since = sync(bob)["next_batch"]
    assert "m.typing" not in ephemeral(sync(bob, since), room)


# -- receipts and read markers -------------------------------------------------------------


async def test_receipts_with_nio(new_nio: NewNio) -> None:
    alice, bob = await new_nio(), await new_nio()
    room_id = await nio_room(alice, bob)
    first = await send_text(alice, room_id, "read me")
    second = await send_text(alice, room_id, "and me")
    await settle(alice, bob)
    poll = asyncio.create_task(alice.sync(timeout=20_000))
    await asyncio.sleep(0.2)
    # nio sends thread_id "main" by default: passed through.
    ok(await bob.update_receipt_marker(room_id, first), UpdateReceiptMarkerResponse)
    response = ok(await poll, SyncResponse)
    got = receipts_of(response, room_id)
    assert [(r.event_id, r.receipt_type, r.user_id, r.thread_id) for r in got] == [
        (first, "m.read", bob.user_id, "main")
    ]
    assert got[0].timestamp > 0
    # A private receipt: only its owner sees it, and nobody else is woken for it.
    await settle(alice, bob)
    poll = asyncio.create_task(alice.sync(timeout=1200))
    await asyncio.sleep(0.1)
    ok(
        await bob.update_receipt_marker(room_id, second, ReceiptType.read_private, None),
        UpdateReceiptMarkerResponse,
    )
    started = time.monotonic()
    quiet = ok(await poll, SyncResponse)
    assert time.monotonic() - started > 0.8
    assert room_id not in quiet.rooms.join
    own = receipts_of(ok(await bob.sync(timeout=0), SyncResponse), room_id)
    assert [(r.event_id, r.receipt_type, r.user_id, r.thread_id) for r in own] == [
        (second, "m.read.private", bob.user_id, None)
    ]
    # read_markers: the fully-read marker is bob's room account data; m.read is public.
    ok(await bob.room_read_markers(room_id, second, read_event=second), RoomReadMarkersResponse)
    marker = ok(await bob.sync(timeout=0), SyncResponse)
    fully_read = [
        e for e in marker.rooms.join[room_id].account_data if isinstance(e, FullyReadEvent)
    ]
    assert [e.event_id for e in fully_read] == [second]
    seen = receipts_of(ok(await alice.sync(timeout=0), SyncResponse), room_id)
    assert [(r.event_id, r.receipt_type, r.user_id) for r in seen] == [
        (second, "m.read", bob.user_id)
    ]


def test_receipts_in_initial_sync_and_threads(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    root = alice.send(room, message("root"))
    reply = alice.send(
        room,
        message("in thread", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
    )
    bob.call("POST", f"/rooms/{q(room)}/receipt/m.read/{q(root)}", json={})
    bob.call("POST", f"/rooms/{q(room)}/receipt/m.read/{q(reply)}", json={"thread_id": root})
    bob.call("POST", f"/rooms/{q(room)}/receipt/m.read.private/{q(reply)}", json={})
    content = ephemeral(sync(alice), room)["m.receipt"]
    assert content[root]["m.read"][bob.user_id].keys() == {"ts"}
    assert content[reply]["m.read"][bob.user_id]["thread_id"] == root
    assert "m.read.private" not in content[reply]
    mine = ephemeral(sync(bob), room)["m.receipt"]
    assert bob.user_id in mine[reply]["m.read.private"]


def test_receipt_bad_input(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    event_id = alice.send(room, message("x"))
    outsider = new_client(http, "sync")
    since = sync(alice)["next_batch"]
    base = f"/rooms/{q(room)}/receipt"
    bob.call("POST", f"{base}/m.read/{q('$nope')}", 404, "M_NOT_FOUND", json={})
    bob.call("POST", f"{base}/m.unknown/{q(event_id)}", 400, "M_INVALID_PARAM", json={})
    bob.call("POST", f"{base}/m.read/{q(event_id)}", 400, "M_INVALID_PARAM", json={"thread_id": ""})
    bob.call(
        "POST",
        f"{base}/m.fully_read/{q(event_id)}",
        400,
        "M_INVALID_PARAM",
        json={"thread_id": "main"},
    )
    bob.call("POST", f"{base}/m.read/{q(event_id)}", 400, "M_BAD_JSON", json={"thread_id": 5})
    outsider.call("POST", f"{base}/m.read/{q(event_id)}", 403, "M_FORBIDDEN", json={})
    # An event from another room is unknown here.
    other_room = alice.create_room(preset="public_chat")
    elsewhere = alice.send(other_room, message("elsewhere"))
    bob.call("POST", f"{base}/m.read/{q(elsewhere)}", 404, "M_NOT_FOUND", json={})
    bob.call(
        "POST",
        f"/rooms/{q(room)}/read_markers",
        404,
        "M_NOT_FOUND",
        json={"m.fully_read": event_id, "m.read": "$missing"},
    )
    # Nothing was stored: no receipt, and no fully-read marker from the failed call.
    body = sync(alice, since)
    assert "m.receipt" not in ephemeral(body, room)
    bob_room = joined(sync(bob), room)
    assert "m.fully_read" not in {e["type"] for e in bob_room["account_data"]["events"]}


# -- presence ------------------------------------------------------------------------------


async def test_presence_with_nio(new_nio: NewNio) -> None:
    alice, bob, stranger = await new_nio(), await new_nio(), await new_nio()
    await nio_room(alice, bob)
    await settle(alice, bob, stranger)
    poll = asyncio.create_task(alice.sync(timeout=20_000))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    ok(await bob.set_presence("unavailable", "in a meeting"), PresenceSetResponse)
    response = ok(await poll, SyncResponse)
    assert time.monotonic() - started < 3
    events = [e for e in response.presence_events if e.user_id == bob.user_id]
    assert events[-1].presence == "unavailable"
    assert events[-1].status_msg == "in a meeting"
    got = ok(await alice.get_presence(bob.user_id), PresenceGetResponse)
    assert got.presence == "unavailable" and got.status_msg == "in a meeting"
    # No shared room: neither in sync nor by asking.
    ok(await stranger.set_presence("online", "hello?"), PresenceSetResponse)
    later = ok(await alice.sync(timeout=0), SyncResponse)
    assert stranger.user_id not in {e.user_id for e in later.presence_events}
    refused = await alice.get_presence(stranger.user_id)
    assert not isinstance(refused, PresenceGetResponse)


def test_presence_initial_sync_filter_and_set_presence(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    user = quote(bob.user_id, safe="")
    bob.call("PUT", f"/presence/{user}/status", json={"presence": "online", "status_msg": "hi"})
    body = sync(alice)
    by_user = {e["sender"]: e["content"] for e in body["presence"]["events"]}
    assert by_user[bob.user_id]["presence"] == "online"
    assert by_user[bob.user_id]["status_msg"] == "hi"
    assert by_user[bob.user_id]["currently_active"] is True
    assert (
        sync(alice, filter={"presence": {"not_types": ["m.presence"]}})["presence"]["events"] == []
    )
    others = {"presence": {"not_senders": [bob.user_id]}}
    assert bob.user_id not in {
        e["sender"] for e in sync(alice, filter=others)["presence"]["events"]
    }
    # set_presence=offline on sync does not change it; unavailable does.
    since = sync(alice)["next_batch"]
    sync(bob, set_presence="offline")
    assert sync(alice, since)["presence"]["events"] == []
    sync(bob, set_presence="unavailable")
    changed = sync(alice, since)["presence"]["events"]
    assert [(e["sender"], e["content"]["presence"]) for e in changed] == [
        (bob.user_id, "unavailable")
    ]
    # Bad input.
    bob.call("PUT", f"/presence/{user}/status", 400, "M_INVALID_PARAM", json={"presence": "away"})
    alice.call("PUT", f"/presence/{user}/status", 403, "M_FORBIDDEN", json={"presence": "online"})
    sync(alice, set_presence="busy", status=400)
    assert room


# -- send-to-device ------------------------------------------------------------------------


def to_device_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = body["to_device"]["events"]
    return events


def send_to_device(
    client: RoomsClient,
    messages: dict[str, Any],
    *,
    event_type: str = "org.example.ping",
    txn_id: str | None = None,
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    path = f"/sendToDevice/{q(event_type)}/{q(txn_id or str(time.monotonic_ns()))}"
    return client.call("PUT", path, status, errcode, json={"messages": messages})


def inbox_rows(server: Server, user_id: str) -> int:
    """Rows waiting in the server's to-device inbox for a user (read beside the server)."""
    db = apsw.Connection(
        str(next(Path(server.data_dir).glob("*.db"))), flags=apsw.SQLITE_OPEN_READONLY
    )
    try:
        row = db.execute(
            "SELECT count(*) FROM to_device_inbox WHERE user_id = ?", (user_id,)
        ).fetchone()
        return int(row[0]) if row else 0
    finally:
        db.close()


async def test_to_device_with_nio(new_nio: NewNio) -> None:
    alice, bob = await new_nio(), await new_nio()
    await settle(alice, bob)
    poll = asyncio.create_task(bob.sync(timeout=20_000))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    note = ToDeviceMessage("org.example.note", bob.user_id, bob.device_id, {"n": 1})
    ok(await alice.to_device(note, tx_id="nio-txn-1"), ToDeviceResponse)
    response = ok(await poll, SyncResponse)
    assert time.monotonic() - started < 3
    received = [e for e in response.to_device_events if isinstance(e, UnknownToDeviceEvent)]
    assert [(e.sender, e.source["type"], e.source["content"]) for e in received] == [
        (alice.user_id, "org.example.note", {"n": 1})
    ]
    # The same transaction again is not delivered twice.
    ok(await alice.to_device(note, tx_id="nio-txn-1"), ToDeviceResponse)
    again = ok(await bob.sync(timeout=0), SyncResponse)
    assert again.to_device_events == []


def test_to_device_targets_order_and_acknowledgement(http: httpx.Client, server: Server) -> None:
    alice, bob = new_client(http, "sync"), new_client(http, "sync")
    laptop = bob.other_device()
    since = {c.user.device_id: sync(c)["next_batch"] for c in (bob, laptop)}
    for n in range(5):
        send_to_device(alice, {bob.user_id: {bob.user.device_id: {"n": n}}})
    send_to_device(alice, {bob.user_id: {"*": {"everyone": True}}}, event_type="org.example.all")
    # Unknown devices and remote users get nothing (and nothing is kept for them).
    send_to_device(alice, {bob.user_id: {"NOSUCHDEVICE": {"lost": True}}})
    send_to_device(alice, {"@someone:elsewhere.example": {"D": {"remote": True}}})
    assert inbox_rows(server, bob.user_id) == 7

    phone = sync(bob, since[bob.user.device_id])
    got = to_device_events(phone)
    assert [e["content"] for e in got] == [*({"n": n} for n in range(5)), {"everyone": True}]
    assert {e["sender"] for e in got} == {alice.user_id}
    assert [e["type"] for e in got][-1] == "org.example.all"
    other = to_device_events(sync(laptop, since[laptop.user.device_id]))
    assert [e["content"] for e in other] == [{"everyone": True}]

    # Not acknowledged yet: a retry with the old token gets them again.
    retry = sync(bob, since[bob.user.device_id])
    assert len(to_device_events(retry)) == 6
    # Syncing on from the new token acknowledges them: deleted, never sent again.
    assert to_device_events(sync(bob, phone["next_batch"])) == []
    assert to_device_events(sync(bob, since[bob.user.device_id])) == []
    assert inbox_rows(server, bob.user_id) == 1  # the laptop's, not acknowledged yet


async def test_to_device_in_batches_of_100(http: httpx.Client) -> None:
    alice, bob = new_client(http, "sync"), new_client(http, "sync")
    since = sync(bob)["next_batch"]

    async def flood() -> None:
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as client:

            async def one(n: int) -> None:
                response = await client.put(
                    f"/_matrix/client/v3/sendToDevice/org.example.n/flood-{n}",
                    headers=alice.user.headers,
                    json={"messages": {bob.user_id: {bob.user.device_id: {"n": n}}}},
                )
                assert response.status_code == 200, response.text

            await asyncio.gather(*(one(n) for n in range(230)))

    await flood()
    seen: list[int] = []
    batches = []
    token = since
    for _ in range(3):
        started = time.monotonic()
        body = sync(bob, token, timeout=5000)
        assert time.monotonic() - started < 2  # messages are waiting: no long-poll
        events = to_device_events(body)
        batches.append(len(events))
        seen += [e["content"]["n"] for e in events]
        assert body["next_batch"] != token
        token = body["next_batch"]
    # All delivered: the next sync has none and long-polls.
    started = time.monotonic()
    assert to_device_events(sync(bob, token, timeout=300)) == []
    assert time.monotonic() - started > 0.25
    assert batches == [100, 100, 30]
    assert sorted(seen) == list(range(230)) and len(set(seen)) == 230


def test_to_device_bad_input(http: httpx.Client, server: Server) -> None:
    alice, bob = new_client(http, "sync"), new_client(http, "sync")
    since = sync(bob)["next_batch"]
    device = bob.user.device_id
    flood = {bob.user_id: {f"D{n}": {} for n in range(10_001)}}
    send_to_device(alice, flood, status=413, errcode="M_TOO_LARGE")
    huge = {bob.user_id: {device: {"blob": "x" * 70_000}}}
    send_to_device(alice, huge, status=413, errcode="M_TOO_LARGE")
    send_to_device(alice, {"not-a-user": {device: {}}}, status=400, errcode="M_INVALID_PARAM")
    send_to_device(alice, {bob.user_id: {device: "text"}}, status=400, errcode="M_BAD_JSON")
    send_to_device(alice, {bob.user_id: ["D"]}, status=400, errcode="M_BAD_JSON")
    alice.call("PUT", "/sendToDevice/org.example/t-1", 400, "M_BAD_JSON", json={"messages": []})
    alice.call("PUT", "/sendToDevice/org.example/t-2", 400, "M_BAD_JSON", json={})
    assert to_device_events(sync(bob, since)) == []
    assert inbox_rows(server, bob.user_id) == 0
