"""matrix-nio (legacy /sync) and sliding sync agree: the same messages, counts,
names and receipts for the same account, read through both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    RegisterResponse,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
)

from tests.e2e.harness import Server
from tests.e2e.matrix import PASSWORD, expect, unique
from tests.e2e.test_sliding_sync import PATH, room_list_body
from tests.e2e.test_sync import CONFIG


@pytest.fixture
async def clients(server: Server) -> AsyncIterator[list[AsyncClient]]:
    made: list[AsyncClient] = []
    for _ in range(2):
        client = AsyncClient(server.url, config=CONFIG)
        response = await client.register(unique("nio-ss"), PASSWORD, device_name="nio")
        assert isinstance(response, RegisterResponse), response
        made.append(client)
    yield made
    for client in made:
        await client.close()


async def sliding(server: Server, client: AsyncClient, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            PATH,
            params={"timeout": 0},
            json=body,
            headers={"Authorization": f"Bearer {client.access_token}"},
        )
    return expect(response, 200)


async def send(client: AsyncClient, room_id: str, text: str) -> str:
    response = await client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": text}
    )
    assert isinstance(response, RoomSendResponse), response
    return str(response.event_id)


async def test_legacy_sync_and_sliding_sync_agree(
    server: Server, clients: list[AsyncClient]
) -> None:
    alice, bob = clients
    named = (await alice.room_create(preset=RoomPreset.public_chat, name="Agreed")).room_id
    plain = (await alice.room_create(preset=RoomPreset.public_chat)).room_id
    for room_id in (named, plain):
        assert isinstance(await bob.join(room_id), JoinResponse)
    sent = {named: [await send(alice, named, f"n{i}") for i in range(4)]}
    sent[plain] = [await send(alice, plain, f"p{i}") for i in range(2)]
    await bob.room_read_markers(named, sent[named][1], sent[named][1])
    await alice.room_read_markers(named, sent[named][3], sent[named][3])

    legacy = await bob.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 3}}})
    assert isinstance(legacy, SyncResponse)
    body = room_list_body()
    body["lists"]["all_rooms"]["timeline_limit"] = 3
    ss = await sliding(server, bob, body)

    for room_id in (named, plain):
        joined = legacy.rooms.join[room_id]
        room = ss["rooms"][room_id]
        legacy_ids = [e.event_id for e in joined.timeline.events]
        assert [e["event_id"] for e in room["timeline"]] == legacy_ids
        assert room["limited"] == joined.timeline.limited
        assert room["notification_count"] == joined.unread_notifications.notification_count
        assert room["highlight_count"] == joined.unread_notifications.highlight_count
        nio_room = bob.rooms[room_id]
        assert room["joined_count"] == nio_room.joined_count == 2
        assert room["name"] == nio_room.display_name
        texts = [e.body for e in joined.timeline.events if isinstance(e, RoomMessageText)]
        assert [e["content"]["body"] for e in room["timeline"] if "body" in e["content"]] == texts

    # Receipts: the same read positions through both.
    legacy_receipts = {
        (r.event_id, r.user_id)
        for event in legacy.rooms.join[named].ephemeral
        for r in getattr(event, "receipts", [])
        if r.receipt_type == "m.read"
    }
    content = ss["extensions"]["receipts"]["rooms"][named]["content"]
    ss_receipts = {
        (event_id, user_id)
        for event_id, kinds in content.items()
        for user_id in kinds.get("m.read", {})
    }
    assert ss_receipts == legacy_receipts
    assert (sent[named][3], alice.user_id) in ss_receipts

    # A new message arrives through both, with the same count.
    pos = ss["pos"]
    new_id = await send(alice, plain, "late")
    update = await bob.sync(timeout=0, since=legacy.next_batch)
    assert isinstance(update, SyncResponse)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            PATH,
            params={"timeout": 0, "pos": pos},
            json=body,
            headers={"Authorization": f"Bearer {bob.access_token}"},
        )
    incremental = expect(response, 200)
    assert set(incremental["rooms"]) == {plain}
    room = incremental["rooms"][plain]
    assert [e["event_id"] for e in room["timeline"]] == [new_id]
    assert [e.event_id for e in update.rooms.join[plain].timeline.events] == [new_id]
    assert (
        room["notification_count"]
        == update.rooms.join[plain].unread_notifications.notification_count
    )
