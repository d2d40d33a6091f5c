"""/sync against the real server: timelines, long-polling, gaps, state deltas,
lazy-loaded members, room summaries, invites, knocks, leaves, account data, full_state,
ignored users and use_state_after. matrix-nio drives the flows a client would; raw
httpx checks the exact JSON.

The helpers here are shared by the other test_sync*.py files.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteInfo,
    JoinResponse,
    RegisterResponse,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
)

from tests.e2e._rooms_server import TEXT, RoomsClient, bodies, ids, message, new_client, q
from tests.e2e.harness import Server
from tests.e2e.matrix import PASSWORD, unique

CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
NewNio = Callable[[], Awaitable[AsyncClient]]

LAZY = {"room": {"state": {"lazy_load_members": True}}}


# -- helpers (shared with the other test_sync*.py files) ----------------------------------


def sync(
    client: RoomsClient,
    since: str | None = None,
    *,
    filter: Any = None,
    timeout: int = 0,
    status: int = 200,
    errcode: str | None = None,
    **params: Any,
) -> Any:
    """GET /sync; `filter` may be a dict (sent inline as JSON) or a filter ID."""
    query: dict[str, Any] = {"timeout": timeout}
    if since is not None:
        query["since"] = since
    if filter is not None:
        query["filter"] = filter if isinstance(filter, str) else json.dumps(filter)
    for key, value in params.items():
        query[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return client.call("GET", "/sync", status, errcode, params=query)


def joined(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    room: dict[str, Any] = body["rooms"]["join"][room_id]
    return room


def timeline(body: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = joined(body, room_id)["timeline"]["events"]
    return events


def state_keys(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in events}


def members_in(events: list[dict[str, Any]]) -> set[str]:
    return {e["state_key"] for e in events if e["type"] == "m.room.member"}


def put_account_data(
    client: RoomsClient, event_type: str, content: Any, room_id: str | None = None
) -> None:
    user = quote(client.user_id, safe="")
    path = f"/user/{user}/account_data/{q(event_type)}"
    if room_id is not None:
        path = f"/user/{user}/rooms/{q(room_id)}/account_data/{q(event_type)}"
    client.call("PUT", path, json=content)


def room_with(http: httpx.Client, count: int, **create: Any) -> tuple[str, list[RoomsClient]]:
    """A public room made by the first of `count` fresh users; all of them joined."""
    clients = [new_client(http, "sync") for _ in range(count)]
    # Anyone may send state (m.room.topic and the like), so tests can use any member.
    create.setdefault("power_level_content_override", {"state_default": 0})
    room = clients[0].create_room(preset="public_chat", **create)
    for client in clients[1:]:
        client.join(room)
    return room, clients


def ok(response: Any, kind: type) -> Any:
    assert isinstance(response, kind), response
    return response


@pytest.fixture
async def opened() -> AsyncIterator[list[AsyncClient]]:
    clients: list[AsyncClient] = []
    yield clients
    for client in clients:
        await client.close()


@pytest.fixture
def new_nio(server: Server, opened: list[AsyncClient]) -> NewNio:
    """A fresh user per call, registered and logged in with matrix-nio."""

    async def make() -> AsyncClient:
        client = AsyncClient(server.url, config=CONFIG)
        opened.append(client)
        ok(await client.register(unique("nio-sync"), PASSWORD, device_name="nio"), RegisterResponse)
        return client

    return make


async def nio_room(alice: AsyncClient, *others: AsyncClient, **create: Any) -> str:
    """A public room created by alice that the others join."""
    response = await alice.room_create(preset=RoomPreset.public_chat, **create)
    room_id: str = response.room_id
    for other in others:
        ok(await other.join(room_id), JoinResponse)
    return room_id


async def send_text(client: AsyncClient, room_id: str, body: str) -> str:
    response = ok(
        await client.room_send(room_id, TEXT, {"msgtype": "m.text", "body": body}),
        RoomSendResponse,
    )
    event_id: str = response.event_id
    return event_id


# -- timelines and long-polling -------------------------------------------------------------


async def test_nio_client_sees_the_other_users_messages(new_nio: NewNio) -> None:
    alice, bob = await new_nio(), await new_nio()
    created = await alice.room_create(name="Chat", invite=[bob.user_id])
    room_id = created.room_id
    first = ok(await bob.sync(timeout=0), SyncResponse)
    invite = first.rooms.invite[room_id]
    assert isinstance(invite, InviteInfo)
    ok(await bob.join(room_id), JoinResponse)
    await bob.sync(timeout=0)
    sent = [await send_text(alice, room_id, f"hello {n}") for n in range(3)]
    update = ok(await bob.sync(timeout=5000), SyncResponse)
    texts = [
        e for e in update.rooms.join[room_id].timeline.events if isinstance(e, RoomMessageText)
    ]
    assert [e.event_id for e in texts] == sent
    assert [e.body for e in texts] == ["hello 0", "hello 1", "hello 2"]
    assert all(e.sender == alice.user_id for e in texts)
    # nio built the room from what sync gave it.
    room = bob.rooms[room_id]
    assert room.display_name == "Chat"
    assert set(room.users) == {alice.user_id, bob.user_id}
    assert room.joined_count == 2


def test_transaction_id_only_for_the_sending_device(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    alice_since = sync(alice)["next_batch"]
    bob_since = sync(bob)["next_batch"]
    laptop = alice.other_device()
    laptop_since = sync(laptop)["next_batch"]
    event_id = alice.send(room, message("mine"), txn_id="txn-1")
    mine = [e for e in timeline(sync(alice, alice_since), room) if e["event_id"] == event_id]
    assert mine[0]["unsigned"]["transaction_id"] == "txn-1"
    for client, since in ((bob, bob_since), (laptop, laptop_since)):
        seen = [e for e in timeline(sync(client, since), room) if e["event_id"] == event_id]
        assert "transaction_id" not in seen[0]["unsigned"]


async def test_long_poll_returns_as_soon_as_a_message_arrives(new_nio: NewNio) -> None:
    alice, bob = await new_nio(), await new_nio()
    room_id = await nio_room(alice, bob, name="Poll")
    await alice.sync(timeout=0)
    poll = asyncio.create_task(alice.sync(timeout=20_000))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    event_id = await send_text(bob, room_id, "wake up")
    response = ok(await poll, SyncResponse)
    assert time.monotonic() - started < 3
    assert [e.event_id for e in response.rooms.join[room_id].timeline.events] == [event_id]


async def test_long_poll_ignores_users_in_no_shared_room(new_nio: NewNio) -> None:
    alice, bob, stranger = await new_nio(), await new_nio(), await new_nio()
    await nio_room(alice, bob)
    elsewhere = await nio_room(stranger)
    await alice.sync(timeout=0)
    await stranger.sync(timeout=0)
    poll = asyncio.create_task(alice.sync(timeout=1500))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await send_text(stranger, elsewhere, "nobody you know")
    await stranger.room_typing(elsewhere, True, 10_000)
    await stranger.set_presence("unavailable", "away")
    response = ok(await poll, SyncResponse)
    assert time.monotonic() - started > 1.0
    assert not response.rooms.join and not response.presence_events


def test_empty_long_poll_times_out_with_nothing(http: httpx.Client) -> None:
    _room, (alice,) = room_with(http, 1)
    since = sync(alice)["next_batch"]
    started = time.monotonic()
    body = sync(alice, since, timeout=400)
    assert 0.35 < time.monotonic() - started < 5
    assert body["rooms"] == {"join": {}, "invite": {}, "leave": {}, "knock": {}}
    assert body["to_device"]["events"] == [] and body["account_data"]["events"] == []
    assert body["device_lists"] == {"changed": [], "left": []}
    assert isinstance(body["device_one_time_keys_count"], dict)
    assert isinstance(body["device_unused_fallback_key_types"], list)


# -- gaps and state deltas --------------------------------------------------------------------


def test_gappy_sync_and_backfill_with_prev_batch(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2, name="Gappy")
    small = {"room": {"timeline": {"limit": 2}}}
    first = sync(alice, filter=small)
    last_seen = timeline(first, room)[-1]["event_id"]
    sent = [bob.send(room, message(f"m{n}")) for n in range(10)]
    body = sync(alice, first["next_batch"], filter=small)
    gap = joined(body, room)["timeline"]
    assert gap["limited"] is True
    assert ids(gap["events"]) == sent[-2:]
    # /messages backwards from prev_batch gives exactly the missed events, then what
    # the client already had.
    page = alice.messages(room, dir="b", limit=9, from_=gap["prev_batch"])
    assert ids(page["chunk"]) == [*sent[7::-1], last_seen]
    # Nothing new: the next incremental sync is not limited and empty.
    quiet = sync(alice, body["next_batch"], filter=small)
    assert room not in quiet["rooms"]["join"]
    one = bob.send(room, message("one more"))
    after = joined(sync(alice, quiet["next_batch"], filter=small), room)
    assert after["timeline"]["limited"] is False
    assert ids(after["timeline"]["events"]) == [one]
    assert after["state"]["events"] == []


def test_limited_sync_state_delta_has_the_gaps_state(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2, name="Delta")
    carol = new_client(http, "sync")
    small = {"room": {"timeline": {"limit": 2}}}
    since = sync(alice, filter=small)["next_batch"]
    topic = bob.set_state(room, "m.room.topic", {"topic": "changed in the gap"})
    carol.join(room)
    for n in range(5):
        bob.send(room, message(f"after {n}"))
    body = joined(sync(alice, since, filter=small), room)
    assert body["timeline"]["limited"] is True
    state = body["state"]["events"]
    assert state_keys(state) == {("m.room.topic", ""), ("m.room.member", carol.user_id)}
    assert [e["event_id"] for e in state if e["type"] == "m.room.topic"] == [topic]


def test_state_left_out_by_the_timeline_filter_comes_as_state(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    only_messages = {"room": {"timeline": {"types": [TEXT]}}}
    since = sync(alice, filter=only_messages)["next_batch"]
    bob.set_state(room, "m.room.topic", {"topic": "quiet change"})
    bob.send(room, message("visible"))
    body = joined(sync(alice, since, filter=only_messages), room)
    assert body["timeline"]["limited"] is False
    assert bodies(body["timeline"]["events"]) == ["visible"]
    assert [e["content"] for e in body["state"]["events"]] == [{"topic": "quiet change"}]
    # Even with no timeline event at all.
    since = sync(alice, filter=only_messages)["next_batch"]
    bob.set_state(room, "org.example.state", {"on": True}, "k")
    body = joined(sync(alice, since, filter=only_messages), room)
    assert body["timeline"]["events"] == []
    assert [e["content"] for e in body["state"]["events"]] == [{"on": True}]


def test_full_state_returns_at_once_with_all_state(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2, name="Full", topic="everything")
    since = sync(alice)["next_batch"]
    started = time.monotonic()
    body = sync(alice, since, timeout=10_000, full_state=True)
    assert time.monotonic() - started < 3
    entry = joined(body, room)
    # The timeline stays a delta from `since`: nothing new.
    assert entry["timeline"]["events"] == []
    keys = state_keys(entry["state"]["events"])
    assert {
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.member", alice.user_id),
        ("m.room.member", bob.user_id),
    } <= keys


def test_room_joined_since_comes_whole(http: httpx.Client) -> None:
    room, (alice,) = room_with(http, 1, name="Newcomer", topic="hi")
    alice.send(room, message("before bob"))
    bob = new_client(http, "sync")
    since = sync(bob)["next_batch"]
    bob.join(room)
    entry = joined(sync(bob, since), room)
    everything = entry["state"]["events"] + entry["timeline"]["events"]
    keys = state_keys([e for e in everything if "state_key" in e])
    assert {("m.room.create", ""), ("m.room.topic", ""), ("m.room.member", bob.user_id)} <= keys
    assert "before bob" in bodies(entry["timeline"]["events"])
    assert entry["summary"]["m.joined_member_count"] == 2


def test_own_profile_change_is_one_event_not_the_room_again(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    bob.send(room, message("old news"))
    since = sync(alice)["next_batch"]
    user = quote(alice.user_id, safe="")
    alice.call("PUT", f"/profile/{user}/displayname", json={"displayname": "Alice Again"})
    entry = joined(sync(alice, since), room)
    events = entry["timeline"]["events"]
    assert [(e["type"], e["content"].get("displayname")) for e in events] == [
        ("m.room.member", "Alice Again")
    ]
    assert entry["state"]["events"] == []


def test_ignored_users_messages_are_not_sent_but_their_state_is(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    put_account_data(alice, "m.ignored_user_list", {"ignored_users": {bob.user_id: {}}})
    since = sync(alice)["next_batch"]
    bob.send(room, message("you cannot hear me"))
    bob.set_state(room, "m.room.topic", {"topic": "still state"})
    events = timeline(sync(alice, since), room)
    assert [e["type"] for e in events] == ["m.room.topic"]
    # Nor their invites.
    other = bob.create_room(preset="private_chat")
    bob.invite(other, alice.user_id)
    assert other not in sync(alice)["rooms"]["invite"]


def test_use_state_after(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2, name="After")
    first = sync(alice, use_state_after=True)
    entry = joined(first, room)
    assert "state" not in entry
    # Initial: the whole state at the end of the timeline, timeline events included.
    assert {("m.room.name", ""), ("m.room.member", bob.user_id)} <= state_keys(
        entry["state_after"]["events"]
    )
    topic = bob.set_state(room, "m.room.topic", {"topic": "after"})
    bob.send(room, message("x"))
    entry = joined(sync(alice, first["next_batch"], use_state_after=True), room)
    assert [e["event_id"] for e in entry["state_after"]["events"]] == [topic]
    assert topic in ids(entry["timeline"]["events"])
    # Without it, `state` as before.
    bob.send(room, message("y"))
    entry = joined(sync(alice, first["next_batch"], use_state_after=False), room)
    assert "state_after" not in entry and "state" in entry
    # With lazy-loading: the senders' members as of the end of the timeline.
    lazy = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    body = sync(alice, filter=lazy, use_state_after=True)
    entry = joined(body, room)
    assert members_in(entry["state_after"]["events"]) == {alice.user_id, bob.user_id}
    user = quote(bob.user_id, safe="")
    bob.call("PUT", f"/profile/{user}/displayname", json={"displayname": "Bob"})
    bob.send(room, message("z"))
    entry = joined(sync(alice, body["next_batch"], filter=lazy, use_state_after=True), room)
    assert [e["content"].get("displayname") for e in entry["state_after"]["events"]] == ["Bob"]
    assert entry["timeline"]["limited"] is True


# -- lazy-loading members -------------------------------------------------------------------


def test_lazy_loading_sends_only_the_senders_members(http: httpx.Client) -> None:
    room, (alice, bob, carol, dave) = room_with(http, 4, name="Lazy")
    dave.send(room, message("from dave, long ago"))
    bob.send(room, message("b1"))
    carol.send(room, message("c1"))
    lazy = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
    redundant = {
        "room": {
            "timeline": {"limit": 2},
            "state": {"lazy_load_members": True, "include_redundant_members": True},
        }
    }
    first = sync(alice, filter=lazy)
    entry = joined(first, room)
    assert bodies(entry["timeline"]["events"]) == ["b1", "c1"]
    # Exactly the senders', plus the user's own on an initial sync.
    assert members_in(entry["state"]["events"]) == {alice.user_id, bob.user_id, carol.user_id}
    assert ("m.room.name", "") in state_keys(entry["state"]["events"])
    since = first["next_batch"]

    bob.send(room, message("b2"))
    # bob's member event was sent already: redundant, so left out...
    assert joined(sync(alice, since, filter=lazy), room)["state"]["events"] == []
    # ...unless asked for.
    again = joined(sync(alice, since, filter=redundant), room)["state"]["events"]
    assert members_in(again) == {bob.user_id}

    # A sender never sent before gets their member event once.
    step = sync(alice, since, filter=lazy)["next_batch"]
    dave.send(room, message("d2"))
    body = sync(alice, step, filter=lazy)
    assert members_in(joined(body, room)["state"]["events"]) == {dave.user_id}
    dave.send(room, message("d3"))
    assert joined(sync(alice, body["next_batch"], filter=lazy), room)["state"]["events"] == []
    # A response never acknowledged does not count: retrying from `step` sends it again.
    retry = joined(sync(alice, step, filter=lazy), room)["state"]["events"]
    assert members_in(retry) == {dave.user_id}


def test_lazy_loading_keeps_membership_changes_in_a_gap(http: httpx.Client) -> None:
    room, (alice, bob, carol) = room_with(http, 3, name="Lazy gap")
    lazy = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
    since = sync(alice, filter=lazy)["next_batch"]
    user = quote(carol.user_id, safe="")
    carol.call("PUT", f"/profile/{user}/displayname", json={"displayname": "Carol"})
    erin = new_client(http, "sync")
    erin.join(room)
    for n in range(3):
        bob.send(room, message(f"b{n}"))
    entry = joined(sync(alice, since, filter=lazy), room)
    assert entry["timeline"]["limited"] is True
    members = {e["state_key"]: e["content"] for e in entry["state"]["events"]}
    # carol and erin sent nothing shown, but their membership changed in the gap.
    assert members[carol.user_id]["displayname"] == "Carol"
    assert members[erin.user_id]["membership"] == "join"
    # bob's join was in the initial timeline: the device has it.
    assert bob.user_id not in members


def test_summary_heroes_and_counts(http: httpx.Client) -> None:
    alice, bob, carol, dave = (new_client(http, "sync") for _ in range(4))
    room = alice.create_room(preset="private_chat")  # no name: heroes are needed
    alice.invite(room, bob.user_id)
    alice.invite(room, carol.user_id)
    carol.join(room)
    alice.invite(room, dave.user_id)
    lazy = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    entry = joined(sync(alice, filter=lazy), room)
    summary = entry["summary"]
    # In stream order of their memberships; never the user.
    assert summary["m.heroes"] == [bob.user_id, carol.user_id, dave.user_id]
    assert summary["m.joined_member_count"] == 2
    assert summary["m.invited_member_count"] == 2
    # With lazy-loading the heroes' member events come along.
    everything = entry["state"]["events"] + entry["timeline"]["events"]
    assert {bob.user_id, carol.user_id, dave.user_id, alice.user_id} <= members_in(
        [e for e in everything if "state_key" in e]
    )
    # A named room needs no heroes.
    alice.set_state(room, "m.room.name", {"name": "Named now"})
    named = joined(sync(alice), room)["summary"]
    assert "m.heroes" not in named
    assert named["m.joined_member_count"] == 2
    # Everyone left but the user: heroes fall back to those who left.
    solo = alice.create_room(preset="public_chat")
    bob.join(solo)
    bob.leave(solo)
    assert joined(sync(alice), solo)["summary"]["m.heroes"] == [bob.user_id]


# -- invites, knocks, leaves -------------------------------------------------------------------


def test_create_room_wakes_every_invitee(http: httpx.Client) -> None:
    """createRoom with several invites wakes each invitee's long-poll, not just the last."""
    import concurrent.futures

    alice = new_client(http, "sync")
    invitees = [new_client(http, "sync") for _ in range(3)]
    tokens = [sync(c)["next_batch"] for c in invitees]
    with concurrent.futures.ThreadPoolExecutor(len(invitees)) as pool:
        polls = [
            pool.submit(lambda c, t: (sync(c, t, timeout=10_000), time.monotonic()), c, t)
            for c, t in zip(invitees, tokens, strict=True)
        ]
        time.sleep(0.3)  # the polls are parked
        started = time.monotonic()
        room = alice.create_room(invite=[c.user_id for c in invitees])
        for poll in polls:
            body, answered = poll.result()
            assert room in body["rooms"]["invite"]
            assert answered - started < 5  # woken, not timed out


def test_invite_comes_with_stripped_state(http: httpx.Client) -> None:
    alice, bob = new_client(http, "sync"), new_client(http, "sync")
    since = sync(bob)["next_batch"]
    room = alice.create_room(preset="private_chat", name="Invite me", topic="come in")
    alice.invite(room, bob.user_id)
    body = sync(bob, since)
    assert room not in body["rooms"]["join"]
    stripped = body["rooms"]["invite"][room]["invite_state"]["events"]
    assert all(set(e) == {"type", "state_key", "sender", "content"} for e in stripped)
    by_key = {(e["type"], e["state_key"]): e for e in stripped}
    assert by_key[("m.room.name", "")]["content"] == {"name": "Invite me"}
    assert by_key[("m.room.topic", "")]["content"]["topic"] == "come in"
    assert ("m.room.create", "") in by_key and ("m.room.join_rules", "") in by_key
    assert by_key[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"
    assert by_key[("m.room.member", bob.user_id)]["sender"] == alice.user_id
    # The invite is not repeated, and goes once joined.
    quiet = sync(bob, body["next_batch"])
    assert room not in quiet["rooms"]["invite"]
    bob.join(room)
    after = sync(bob, quiet["next_batch"])
    assert room in after["rooms"]["join"] and room not in after["rooms"]["invite"]


def test_knock_comes_with_knock_state(http: httpx.Client) -> None:
    alice, carol = new_client(http, "sync"), new_client(http, "sync")
    room = alice.create_room(preset="private_chat", name="Knock here")
    alice.set_state(room, "m.room.join_rules", {"join_rule": "knock"})
    since = sync(carol)["next_batch"]
    alice_since = sync(alice)["next_batch"]
    carol.knock(room, reason="let me in")
    body = sync(carol, since)
    stripped = body["rooms"]["knock"][room]["knock_state"]["events"]
    by_key = {(e["type"], e["state_key"]): e for e in stripped}
    assert by_key[("m.room.join_rules", "")]["content"] == {"join_rule": "knock"}
    assert by_key[("m.room.member", carol.user_id)]["content"]["membership"] == "knock"
    # The room's members see the knock in the timeline.
    knocks = [e for e in timeline(sync(alice, alice_since), room) if e["type"] == "m.room.member"]
    assert knocks[-1]["content"]["membership"] == "knock"


def test_leave_kick_and_ban_appear_under_leave(http: httpx.Client) -> None:
    room, (alice, bob, carol, dave) = room_with(http, 4, name="Exits")
    since = {c.user_id: sync(c)["next_batch"] for c in (bob, carol, dave)}
    bob.leave(room)
    alice.member_action("kick", room, carol.user_id, reason="out")
    alice.member_action("ban", room, dave.user_id)
    alice.send(room, message("after they went"))
    for client, membership, sender in (
        (bob, "leave", bob.user_id),
        (carol, "leave", alice.user_id),
        (dave, "ban", alice.user_id),
    ):
        body = sync(client, since[client.user_id])
        assert room not in body["rooms"]["join"]
        left = body["rooms"]["leave"][room]
        last = left["timeline"]["events"][-1]
        assert (last["type"], last["state_key"]) == ("m.room.member", client.user_id)
        assert (last["content"]["membership"], last["sender"]) == (membership, sender)
        assert "after they went" not in bodies(left["timeline"]["events"])
        # Once told, not again.
        assert room not in sync(client, body["next_batch"])["rooms"]["leave"]
    # An initial sync shows left rooms only with include_leave.
    assert room not in sync(bob)["rooms"]["leave"]
    archived = sync(bob, filter={"room": {"include_leave": True}})["rooms"]["leave"][room]
    assert archived["timeline"]["events"][-1]["content"]["membership"] == "leave"
    everything = archived["state"]["events"] + archived["timeline"]["events"]
    assert ("m.room.name", "") in state_keys([e for e in everything if "state_key" in e])
    assert "after they went" not in bodies(archived["timeline"]["events"])


def test_rejected_invite_goes_to_leave_without_room_state(http: httpx.Client) -> None:
    alice, bob = new_client(http, "sync"), new_client(http, "sync")
    room = alice.create_room(preset="private_chat", name="Secret")
    alice.set_state(room, "m.room.topic", {"topic": "not for bob"})
    alice.invite(room, bob.user_id)
    since = sync(bob)["next_batch"]
    bob.leave(room)
    left = sync(bob, since)["rooms"]["leave"][room]
    assert left["state"]["events"] == []
    assert [e["content"]["membership"] for e in left["timeline"]["events"]][-1] == "leave"
    assert ("m.room.topic", "") not in state_keys(
        [e for e in left["timeline"]["events"] if "state_key" in e]
    )


# -- account data --------------------------------------------------------------------------


def test_account_data_global_room_and_tags(http: httpx.Client) -> None:
    room, (alice,) = room_with(http, 1)
    put_account_data(alice, "org.example.config", {"theme": "dark"})
    put_account_data(alice, "org.example.room", {"pinned": True}, room)
    user = quote(alice.user_id, safe="")
    alice.call("PUT", f"/user/{user}/rooms/{q(room)}/tags/u.work", json={"order": 0.5})
    first = sync(alice)
    globals_ = {e["type"]: e["content"] for e in first["account_data"]["events"]}
    assert globals_["org.example.config"] == {"theme": "dark"}
    in_room = {e["type"]: e["content"] for e in joined(first, room)["account_data"]["events"]}
    assert in_room == {
        "org.example.room": {"pinned": True},
        "m.tag": {"tags": {"u.work": {"order": 0.5}}},
    }
    # Incremental: only what changed, and a long-poll wakes for it.
    poll_started = time.monotonic()
    put_account_data(alice, "org.example.config", {"theme": "light"})
    body = sync(alice, first["next_batch"], timeout=10_000)
    assert time.monotonic() - poll_started < 3
    assert body["account_data"]["events"] == [
        {"type": "org.example.config", "content": {"theme": "light"}}
    ]
    assert room not in body["rooms"]["join"]
    put_account_data(alice, "org.example.room", {"pinned": False}, room)
    body = sync(alice, body["next_batch"])
    assert joined(body, room)["account_data"]["events"] == [
        {"type": "org.example.room", "content": {"pinned": False}}
    ]
    assert joined(body, room)["timeline"]["events"] == []
    # full_state sends it all again.
    full = sync(alice, body["next_batch"], full_state=True)
    assert {e["type"] for e in full["account_data"]["events"]} >= {"org.example.config"}
    assert {e["type"] for e in joined(full, room)["account_data"]["events"]} == {
        "org.example.room",
        "m.tag",
    }


async def test_long_polls_of_two_users_wake_together(new_nio: NewNio) -> None:
    alice, bob = await new_nio(), await new_nio()
    room_id = await nio_room(alice, bob)
    for _ in range(2):  # the second round takes in the other's coming online
        await alice.sync(timeout=0)
        await bob.sync(timeout=0)
    polls = [asyncio.create_task(c.sync(timeout=20_000)) for c in (alice, bob)]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    http_alice = httpx.AsyncClient(base_url=alice.homeserver, timeout=30)
    try:
        response = await http_alice.put(
            f"/_matrix/client/v3/rooms/{q(room_id)}/send/{TEXT}/t1",
            headers={"Authorization": f"Bearer {alice.access_token}"},
            json={"msgtype": "m.text", "body": "both"},
        )
        assert response.status_code == 200
    finally:
        await http_alice.aclose()
    for response in await asyncio.gather(*polls):
        ok(response, SyncResponse)
        assert [e.body for e in response.rooms.join[room_id].timeline.events] == ["both"]
    assert time.monotonic() - started < 3
