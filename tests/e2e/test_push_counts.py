"""Push rule evaluation in the send path, seen through /sync's unread_notifications and
/notifications, against the real server: mentions (m.mentions user_ids and room, the
display name, legacy body mentions), one-to-one vs group rooms, suppressed notices, edits
and reactions, one's own messages, ignored users, receipts (m.read, m.read.private,
threads), invites, and exact counts under concurrent sends."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from nio import AsyncClient, ReceiptType, SyncResponse, UpdateReceiptMarkerResponse

from tests.e2e import test_sync as shared
from tests.e2e._rooms_server import RoomsClient, message, new_client, q
from tests.e2e.harness import Server
from tests.e2e.matrix import CS
from tests.e2e.test_sync import NewNio, joined, nio_room, ok, room_with, send_text, sync, timeline

opened = shared.opened
new_nio = shared.new_nio


def unread(client: RoomsClient, room: str) -> tuple[int, int]:
    """(notification_count, highlight_count) from an initial sync."""
    counts = joined(sync(client, filter={"room": {"timeline": {"limit": 1}}}), room)[
        "unread_notifications"
    ]
    return counts["notification_count"], counts["highlight_count"]


def mentions(body: str, *user_ids: str, room: bool = False) -> dict[str, Any]:
    mentioned: dict[str, Any] = {"user_ids": list(user_ids)}
    if room:
        mentioned["room"] = True
    return message(body, **{"m.mentions": mentioned})


def receipt(
    client: RoomsClient, room: str, event_id: str, kind: str = "m.read", **body: Any
) -> None:
    client.call("POST", f"/rooms/{q(room)}/receipt/{kind}/{q(event_id)}", json=body)


def latest_actions(client: RoomsClient) -> list[Any]:
    notifications = client.call("GET", "/notifications", params={"limit": 1})["notifications"]
    actions: list[Any] = notifications[0]["actions"]
    return actions


def set_display_name(client: RoomsClient, name: str) -> None:
    client.call("PUT", f"/profile/{q(client.user_id)}/displayname", json={"displayname": name})


def test_group_room_messages_and_mentions(http: httpx.Client) -> None:
    room, (owner, alice, bob) = room_with(http, 3)
    bob.send(room, message("hello everyone"))
    assert unread(alice, room) == (1, 0)
    assert unread(bob, room) == (0, 0)  # never for one's own messages
    bob.send(room, mentions("alice, look", alice.user_id))
    assert unread(alice, room) == (2, 1)
    assert unread(owner, room) == (2, 0)  # not mentioned: a plain message
    # @room needs the power level of notifications.room (50): bob has 0, owner 100.
    bob.send(room, mentions("@room hi", room=True))
    assert unread(alice, room) == (3, 1)
    owner.send(room, mentions("@room meeting", room=True))
    assert unread(alice, room) == (4, 2)
    assert unread(bob, room) == (1, 1)
    assert latest_actions(alice) == ["notify", {"set_tweak": "highlight"}]


def test_silent_events(http: httpx.Client) -> None:
    room, (_owner, alice, bob) = room_with(http, 3)
    first = bob.send(room, message("original"))
    assert unread(alice, room) == (1, 0)
    bob.send(room, message("beep", msgtype="m.notice"))
    bob.send(room, mentions("beep @alice", alice.user_id) | {"msgtype": "m.notice"})
    # An edit (.m.rule.suppress_edits), a reaction, state events, a membership change.
    bob.send(
        room,
        {
            "msgtype": "m.text",
            "body": "* edited",
            "m.new_content": {"msgtype": "m.text", "body": "edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    bob.send(
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}},
        event_type="m.reaction",
    )
    bob.set_state(room, "m.room.topic", {"topic": "quiet"})
    new_client(http, "push").join(room)
    bob.send(room, {"custom": True}, event_type="org.example.custom")
    assert unread(alice, room) == (1, 0)


def test_one_to_one_and_encrypted(http: httpx.Client) -> None:
    dm, (alice, bob) = room_with(http, 2)
    bob.send(dm, message("psst"))
    assert unread(alice, dm) == (1, 0)
    assert latest_actions(alice) == ["notify", {"set_tweak": "sound", "value": "default"}]
    bob.send(
        dm, {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x"}, event_type="m.room.encrypted"
    )
    assert unread(alice, dm) == (2, 0)
    assert latest_actions(alice) == ["notify", {"set_tweak": "sound", "value": "default"}]
    group, (carol, _dave, erin) = room_with(http, 3)
    erin.send(
        group,
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x"},
        event_type="m.room.encrypted",
    )
    assert unread(carol, group) == (1, 0)
    assert latest_actions(carol) == ["notify"]
    erin.send(
        group,
        {"call_id": "c", "version": "1", "lifetime": 60000, "offer": {}},
        event_type="m.call.invite",
    )
    assert latest_actions(carol) == ["notify", {"set_tweak": "sound", "value": "ring"}]


def test_display_name_and_legacy_body_mentions(http: httpx.Client) -> None:
    """v1.17 has no default rule looking in the body (MSC4210): a display name or a user
    name in the text is a plain message, unless the user asks for more."""
    room, (_owner, alice, bob) = room_with(http, 3)
    set_display_name(alice, "Alice Liddell")
    bob.send(room, message("Alice Liddell, and @room"))
    bob.send(room, message(f"{alice.user.localpart}: are you there?"))
    assert unread(alice, room) == (2, 0)
    # The deprecated contains_display_name condition, in a rule of her own.
    alice.call(
        "PUT",
        "/pushrules/global/override/name",
        json={
            "conditions": [{"kind": "contains_display_name"}],
            "actions": ["notify", {"set_tweak": "highlight"}],
        },
    )
    bob.send(room, message("where is alice liddell?"))
    assert unread(alice, room) == (3, 1)
    bob.send(room, message("alice liddellx is someone else"))
    assert unread(alice, room) == (4, 1)
    # A content rule on her user name, matched at word boundaries.
    alice.call(
        "PUT",
        f"/pushrules/global/content/{q('me')}",
        json={"pattern": alice.user.localpart, "actions": ["notify", {"set_tweak": "highlight"}]},
    )
    bob.send(room, message(f"ping {alice.user.localpart}!"))
    assert unread(alice, room) == (5, 2)


def test_user_rules_change_what_counts(http: httpx.Client) -> None:
    room, (owner, alice, bob) = room_with(http, 3)
    alice.call("PUT", f"/pushrules/global/sender/{q(bob.user_id)}", json={"actions": []})
    bob.send(room, message("muted"))
    owner.send(room, message("not muted"))
    assert unread(alice, room) == (1, 0)
    alice.call("DELETE", f"/pushrules/global/sender/{q(bob.user_id)}")
    bob.send(room, message("audible again"))
    assert unread(alice, room) == (2, 0)
    alice.call("PUT", f"/pushrules/global/room/{q(room)}", json={"actions": []})
    bob.send(room, message("room muted"))
    assert unread(alice, room) == (2, 0)
    alice.call("PUT", "/pushrules/global/override/.m.rule.master/enabled", json={"enabled": True})
    alice.call("DELETE", f"/pushrules/global/room/{q(room)}")
    bob.send(room, mentions("even mentions", alice.user_id))
    assert unread(alice, room) == (2, 0)


def test_receipts_clear_counts_up_to_their_event(http: httpx.Client) -> None:
    room, (owner, alice, bob) = room_with(http, 3)
    sent = [bob.send(room, message(f"m{n}")) for n in range(2)]
    sent.append(bob.send(room, mentions("you", alice.user_id)))
    sent.append(bob.send(room, message("m3")))
    assert unread(alice, room) == (4, 1)
    since = sync(alice)["next_batch"]
    receipt(alice, room, sent[1])
    # The counts change in the same sync as the receipt.
    update = sync(alice, since)
    assert joined(update, room)["unread_notifications"] == {
        "notification_count": 2,
        "highlight_count": 1,
    }
    # m.read.private counts too; the receipt further ahead wins.
    receipt(alice, room, sent[2], "m.read.private")
    assert unread(alice, room) == (1, 0)
    receipt(alice, room, sent[0])  # m.read behind m.read.private: nothing comes back
    assert unread(alice, room) == (1, 0)
    # Another user's receipt changes nothing for alice; a read marker with m.read clears.
    receipt(owner, room, sent[3])
    assert unread(alice, room) == (1, 0)
    alice.call("POST", f"/rooms/{q(room)}/read_markers", json={"m.fully_read": sent[3]})
    assert unread(alice, room) == (1, 0)  # the fully-read marker is not a receipt
    alice.call("POST", f"/rooms/{q(room)}/read_markers", json={"m.read": sent[3]})
    assert unread(alice, room) == (0, 0)


def test_threaded_receipts(http: httpx.Client) -> None:
    room, (_owner, alice, bob) = room_with(http, 3)
    root = bob.send(room, message("thread root"))
    replies = [
        bob.send(
            room,
            message(f"reply {n}", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
        )
        for n in range(2)
    ]
    after = bob.send(room, message("main timeline"))
    assert unread(alice, room) == (4, 0)
    receipt(alice, room, replies[1], thread_id=root)
    assert unread(alice, room) == (2, 0)  # the root and the last main message remain
    receipt(alice, room, after, thread_id="main")
    assert unread(alice, room) == (0, 0)
    bob.send(
        room, message("reply 3", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    )
    newest = bob.send(room, message("main again"))
    assert unread(alice, room) == (2, 0)
    receipt(alice, room, newest)  # unthreaded: every thread up to there
    assert unread(alice, room) == (0, 0)


def test_ignored_senders_and_leaving(http: httpx.Client) -> None:
    room, (owner, alice, bob) = room_with(http, 3)
    alice.call(
        "PUT",
        f"/user/{q(alice.user_id)}/account_data/m.ignored_user_list",
        json={"ignored_users": {bob.user_id: {}}},
    )
    bob.send(room, mentions("hey", alice.user_id))
    owner.send(room, message("hello"))
    assert unread(alice, room) == (1, 0)
    alice.leave(room)
    alice.join(room)
    assert unread(alice, room) == (0, 0)


def test_counts_arrive_with_the_event(http: httpx.Client) -> None:
    room, (_owner, alice, bob) = room_with(http, 3)
    since = sync(alice)["next_batch"]
    event_id = bob.send(room, mentions("now", alice.user_id))
    update = sync(alice, since, timeout=5000)
    assert [e["event_id"] for e in timeline(update, room)] == [event_id]
    assert joined(update, room)["unread_notifications"] == {
        "notification_count": 1,
        "highlight_count": 1,
    }


def test_invites_notify_the_invitee(http: httpx.Client) -> None:
    owner = new_client(http, "push")
    carol = new_client(http, "push")
    room = owner.create_room(invite=[carol.user_id])
    listed = carol.call("GET", "/notifications")["notifications"]
    assert [n["room_id"] for n in listed] == [room]
    assert listed[0]["event"]["type"] == "m.room.member"
    assert listed[0]["event"]["state_key"] == carol.user_id
    assert listed[0]["actions"] == ["notify", {"set_tweak": "sound", "value": "default"}]
    carol.join(room)
    assert unread(carol, room) == (0, 0)  # an invite is not an unread message


async def test_concurrent_senders_count_exactly(server: Server, http: httpx.Client) -> None:
    senders = 5
    per_sender = 12
    room, clients = room_with(http, senders + 1)
    reader, writers = clients[0], clients[1:]

    async def send_all(client: RoomsClient, pool: httpx.AsyncClient) -> None:
        for n in range(per_sender):
            content = mentions(f"{n}", reader.user_id) if n % 3 == 0 else message(f"{n}")
            response = await pool.put(
                f"{CS}/rooms/{q(room)}/send/m.room.message/c{n}",
                json=content,
                headers=client.user.headers,
            )
            assert response.status_code == 200, response.text

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as pool:
        await asyncio.gather(*(send_all(client, pool) for client in writers))
    total = senders * per_sender
    assert unread(reader, room) == (total, senders * 4)
    for writer in writers:  # everyone else's messages, never their own
        assert unread(writer, room)[0] == total - per_sender


async def test_nio_sees_counts_and_clears_them(new_nio: NewNio) -> None:
    alice: AsyncClient = await new_nio()
    bob: AsyncClient = await new_nio()
    room_id = await nio_room(alice, bob)
    ok(await alice.sync(timeout=0), SyncResponse)
    await send_text(bob, room_id, "one")
    last = await send_text(bob, room_id, "two")
    ok(await alice.sync(timeout=5000), SyncResponse)
    room = alice.rooms[room_id]
    assert (room.unread_notifications, room.unread_highlights) == (2, 0)
    ok(
        await alice.update_receipt_marker(room_id, last, ReceiptType.read),
        UpdateReceiptMarkerResponse,
    )
    ok(await alice.sync(timeout=5000), SyncResponse)
    assert (room.unread_notifications, room.unread_highlights) == (0, 0)


async def test_a_big_rooms_messages_count_exactly_beside_dms(
    server: Server, http: httpx.Client
) -> None:
    """In a room of 52 a message's unit may give way to a DM written meanwhile and run
    again (storage/db.py, give_way): sent concurrently with DMs from other clients, every
    message still counts once for every member, and every DM arrives once."""
    big_room, members = room_with(http, 52)
    reader, writers = members[0], members[1:4]
    dm_room, (dm_sender, dm_reader) = room_with(http, 2)
    per_sender = 6

    async def send_all(client: RoomsClient, room: str, pool: httpx.AsyncClient) -> list[str]:
        sent = []
        for n in range(per_sender):
            response = await pool.put(
                f"{CS}/rooms/{q(room)}/send/m.room.message/big{n}",
                json=message(f"{n}"),
                headers=client.user.headers,
            )
            assert response.status_code == 200, response.text
            sent.append(response.json()["event_id"])
        return sent

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as pool:
        sent = await asyncio.gather(
            *(send_all(client, big_room, pool) for client in writers),
            send_all(dm_sender, dm_room, pool),
        )
    event_ids = [event_id for batch in sent for event_id in batch]
    assert len(set(event_ids)) == len(event_ids)
    total = len(writers) * per_sender
    assert unread(reader, big_room) == (total, 0)
    assert unread(members[-1], big_room) == (total, 0)
    assert unread(writers[0], big_room) == (total - per_sender, 0)
    assert unread(dm_reader, dm_room) == (per_sender, 0)
    messages = reader.call(
        "GET", f"/rooms/{q(big_room)}/messages", params={"dir": "b", "limit": 50}
    )["chunk"]
    received = [e["event_id"] for e in messages if e["type"] == "m.room.message"]
    assert sorted(received) == sorted(event_id for batch in sent[:-1] for event_id in batch)
