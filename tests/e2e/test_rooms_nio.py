"""Rooms driven by matrix-nio, a real Matrix client library, against the real server:
room creation with every option nio has, membership, sending (with transaction IDs),
state, /messages, /context, redaction, member lists and profiles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinedMembersResponse,
    JoinedRoomsResponse,
    JoinResponse,
    LoginResponse,
    MessageDirection,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    RedactedEvent,
    RegisterResponse,
    RoomBanResponse,
    RoomContextResponse,
    RoomCreateResponse,
    RoomForgetResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomKnockResponse,
    RoomLeaveResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomSendResponse,
    RoomUnbanResponse,
    RoomVisibility,
)

from tests.e2e.harness import Server
from tests.e2e.matrix import PASSWORD, mxid, unique

CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)

NewClient = Callable[[], Awaitable[AsyncClient]]


@pytest.fixture
async def opened() -> AsyncIterator[list[AsyncClient]]:
    """Every nio client a test opens, closed at its end."""
    clients: list[AsyncClient] = []
    yield clients
    for client in clients:
        await client.close()


@pytest.fixture
def new_client(server: Server, opened: list[AsyncClient]) -> NewClient:
    """Registers a fresh user per call."""

    async def make() -> AsyncClient:
        client = AsyncClient(server.url, config=CONFIG)
        opened.append(client)
        registered = await client.register(unique("nio-room"), PASSWORD, device_name="nio")
        assert isinstance(registered, RegisterResponse), registered
        return client

    return make


@pytest.fixture
def login_as(server: Server, opened: list[AsyncClient]) -> Callable[[str], Awaitable[AsyncClient]]:
    """Another device of an existing user, logged in with m.login.password."""

    async def login(user_id: str) -> AsyncClient:
        client = AsyncClient(server.url, user=user_id, config=CONFIG)
        opened.append(client)
        ok(await client.login(PASSWORD, device_name="nio laptop"), LoginResponse)
        return client

    return login


def ok(response: Any, kind: type) -> Any:
    assert isinstance(response, kind), response
    return response


def error(response: Any, status: str) -> None:
    assert not isinstance(response, (RoomSendResponse, JoinResponse)), response
    assert response.status_code == status, response


async def state_of(client: AsyncClient, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    response = ok(await client.room_get_state(room_id), RoomGetStateResponse)
    return {(e["type"], e["state_key"]): e for e in response.events}


async def content_of(
    client: AsyncClient, room_id: str, event_type: str, state_key: str = ""
) -> dict[str, Any]:
    response = await client.room_get_state_event(room_id, event_type, state_key)
    return ok(response, RoomGetStateEventResponse).content  # type: ignore[no-any-return]


async def membership(client: AsyncClient, room_id: str, user_id: str) -> str:
    return (await content_of(client, room_id, "m.room.member", user_id))["membership"]  # type: ignore[no-any-return]


async def texts(client: AsyncClient, room_id: str, limit: int = 100) -> list[str]:
    """The message bodies, oldest first."""
    response = ok(
        await client.room_messages(room_id, limit=limit, direction=MessageDirection.front),
        RoomMessagesResponse,
    )
    return [e.body for e in response.chunk if isinstance(e, RoomMessageText)]


# -- creation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "visibility", "join_rule", "guest_access"),
    [
        (RoomPreset.private_chat, RoomVisibility.private, "invite", "can_join"),
        (RoomPreset.trusted_private_chat, RoomVisibility.private, "invite", "can_join"),
        (RoomPreset.public_chat, RoomVisibility.public, "public", "forbidden"),
        (None, RoomVisibility.public, "public", "forbidden"),
        (None, RoomVisibility.private, "invite", "can_join"),
    ],
)
async def test_create_room_with_every_option(
    new_client: NewClient,
    preset: RoomPreset | None,
    visibility: RoomVisibility,
    join_rule: str,
    guest_access: str,
) -> None:
    alice, bob = await new_client(), await new_client()
    alias = unique("nio-alias")
    created = ok(
        await alice.room_create(
            visibility=visibility,
            alias=alias,
            name="The Room",
            topic="About things",
            preset=preset,
            invite=[bob.user_id],
            initial_state=[
                {"type": "org.example.setting", "state_key": "k", "content": {"on": True}},
                {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
            ],
            power_level_override={
                "events_default": 5,
                "users": {alice.user_id: 100, bob.user_id: 5},
            },
            room_version="10",
        ),
        RoomCreateResponse,
    )
    room_id = created.room_id
    state = await state_of(alice, room_id)
    assert state[("m.room.create", "")]["content"]["room_version"] == "10"
    assert state[("m.room.create", "")]["content"]["creator"] == alice.user_id
    assert state[("m.room.name", "")]["content"] == {"name": "The Room"}
    assert state[("m.room.topic", "")]["content"]["topic"] == "About things"
    assert state[("m.room.canonical_alias", "")]["content"] == {"alias": f"#{alias}:localhost"}
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": join_rule}
    assert state[("m.room.guest_access", "")]["content"] == {"guest_access": guest_access}
    # initial_state overrides the preset's history visibility.
    assert state[("m.room.history_visibility", "")]["content"] == {"history_visibility": "joined"}
    assert state[("org.example.setting", "k")]["content"] == {"on": True}
    assert state[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"
    levels = state[("m.room.power_levels", "")]["content"]
    assert levels["events_default"] == 5
    # The override replaces `users` as a whole.
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 5}
    # The creator's membership came first, the invite last.
    order = [e["type"] for e in sorted(state.values(), key=lambda e: e["origin_server_ts"])]
    assert order[0] == "m.room.create"

    # bob accepts by alias.
    joined = ok(await bob.join(f"#{alias}:localhost"), JoinResponse)
    assert joined.room_id == room_id
    rooms = ok(await bob.joined_rooms(), JoinedRoomsResponse)
    assert room_id in rooms.rooms
    # power_level_override gave bob exactly events_default.
    ok(
        await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"}),
        RoomSendResponse,
    )


@pytest.mark.parametrize("version", ["1", "3", "4", "10", "11", "12"])
async def test_room_versions(new_client: NewClient, version: str) -> None:
    alice = await new_client()
    room_id = ok(await alice.room_create(room_version=version), RoomCreateResponse).room_id
    assert (await content_of(alice, room_id, "m.room.create"))["room_version"] == version
    sent = ok(
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "v"}),
        RoomSendResponse,
    )
    ok(
        await alice.room_put_state(room_id, "m.room.topic", {"topic": f"v{version}"}),
        RoomPutStateResponse,
    )
    ok(await alice.room_redact(room_id, sent.event_id, reason="test"), RoomRedactResponse)
    context = ok(await alice.room_context(room_id, sent.event_id), RoomContextResponse)
    assert isinstance(context.event, RedactedEvent)
    assert context.event.redacter == alice.user_id


async def test_unsupported_room_version(new_client: NewClient) -> None:
    alice = await new_client()
    refused = await alice.room_create(room_version="13")
    assert not isinstance(refused, RoomCreateResponse)
    assert refused.status_code == "M_UNSUPPORTED_ROOM_VERSION"


# -- membership ------------------------------------------------------------------------------


async def test_membership_lifecycle(new_client: NewClient) -> None:
    alice, bob, carol = await new_client(), await new_client(), await new_client()
    room_id = ok(
        await alice.room_create(preset=RoomPreset.private_chat, name="club"), RoomCreateResponse
    ).room_id
    # Not invited: refused.
    error(await bob.join(room_id), "M_FORBIDDEN")
    ok(await alice.room_invite(room_id, bob.user_id), RoomInviteResponse)
    ok(await alice.room_invite(room_id, carol.user_id), RoomInviteResponse)
    assert await membership(alice, room_id, bob.user_id) == "invite"
    ok(await bob.join(room_id), JoinResponse)
    # carol rejects.
    ok(await carol.room_leave(room_id), RoomLeaveResponse)
    assert await membership(alice, room_id, carol.user_id) == "leave"
    members = ok(await alice.joined_members(room_id), JoinedMembersResponse)
    assert {m.user_id for m in members.members} == {alice.user_id, bob.user_id}

    # Kick with a reason; rejoining an invite-only room needs a new invite.
    ok(await alice.room_kick(room_id, bob.user_id, reason="out"), RoomKickResponse)
    kick = await content_of(alice, room_id, "m.room.member", bob.user_id)
    assert kick == {"membership": "leave", "reason": "out"}
    error(await bob.join(room_id), "M_FORBIDDEN")
    ok(await alice.room_invite(room_id, bob.user_id), RoomInviteResponse)
    ok(await bob.join(room_id), JoinResponse)

    # Ban, unban.
    ok(await alice.room_ban(room_id, bob.user_id, reason="bad"), RoomBanResponse)
    assert await membership(alice, room_id, bob.user_id) == "ban"
    error(await bob.join(room_id), "M_FORBIDDEN")
    error(await alice.room_invite(room_id, bob.user_id), "M_FORBIDDEN")
    ok(await alice.room_unban(room_id, bob.user_id), RoomUnbanResponse)
    assert await membership(alice, room_id, bob.user_id) == "leave"
    ok(await alice.room_invite(room_id, bob.user_id), RoomInviteResponse)
    ok(await bob.join(room_id), JoinResponse)

    # bob (power 0) may not kick or ban.
    error(await bob.room_kick(room_id, alice.user_id), "M_FORBIDDEN")
    error(await bob.room_ban(room_id, alice.user_id), "M_FORBIDDEN")

    # Leave and forget.
    error(await bob.room_forget(room_id), "M_UNKNOWN")
    ok(await bob.room_leave(room_id), RoomLeaveResponse)
    ok(await bob.room_forget(room_id), RoomForgetResponse)
    rooms = ok(await bob.joined_rooms(), JoinedRoomsResponse)
    assert room_id not in rooms.rooms
    refused = await bob.room_messages(room_id)
    assert not isinstance(refused, RoomMessagesResponse)
    assert refused.status_code == "M_FORBIDDEN"


async def test_knock_with_nio(new_client: NewClient) -> None:
    alice, bob = await new_client(), await new_client()
    room_id = ok(
        await alice.room_create(
            room_version="7",
            initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
        ),
        RoomCreateResponse,
    ).room_id
    ok(await bob.room_knock(room_id, reason="hi"), RoomKnockResponse)
    assert await membership(alice, room_id, bob.user_id) == "knock"
    ok(await alice.room_invite(room_id, bob.user_id), RoomInviteResponse)
    ok(await bob.join(room_id), JoinResponse)
    assert await membership(alice, room_id, bob.user_id) == "join"


# -- sending and reading ---------------------------------------------------------------------


async def test_send_with_transaction_ids(
    new_client: NewClient, login_as: Callable[[str], Awaitable[AsyncClient]]
) -> None:
    alice, bob = await new_client(), await new_client()
    room_id = ok(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse).room_id
    ok(await bob.join(room_id), JoinResponse)
    tx_id = str(uuid.uuid4())
    body = {"msgtype": "m.text", "body": "exactly once"}
    first = ok(
        await alice.room_send(room_id, "m.room.message", body, tx_id=tx_id), RoomSendResponse
    )
    again = ok(
        await alice.room_send(room_id, "m.room.message", body, tx_id=tx_id), RoomSendResponse
    )
    assert again.event_id == first.event_id
    # The same txn ID from another user is another message.
    theirs = ok(await bob.room_send(room_id, "m.room.message", body, tx_id=tx_id), RoomSendResponse)
    assert theirs.event_id != first.event_id
    assert (await texts(bob, room_id)).count("exactly once") == 2

    # The sender sees its transaction ID, others do not.
    context = ok(await alice.room_context(room_id, first.event_id), RoomContextResponse)
    assert context.event.source["unsigned"]["transaction_id"] == tx_id
    context = ok(await bob.room_context(room_id, first.event_id), RoomContextResponse)
    assert "transaction_id" not in context.event.source["unsigned"]

    # alice on a second device (logged in with nio): the same txn ID is a new request there,
    # and the first device's transaction ID is not shown to it.
    laptop = await login_as(alice.user_id)
    other = ok(
        await laptop.room_send(room_id, "m.room.message", body, tx_id=tx_id), RoomSendResponse
    )
    assert other.event_id != first.event_id
    context = ok(await laptop.room_context(room_id, first.event_id), RoomContextResponse)
    assert "transaction_id" not in context.event.source["unsigned"]
    context = ok(await laptop.room_context(room_id, other.event_id), RoomContextResponse)
    assert context.event.source["unsigned"]["transaction_id"] == tx_id
    assert (await texts(bob, room_id)).count("exactly once") == 3


async def test_concurrent_senders(new_client: NewClient) -> None:
    """Sends from several clients at once are serialised: each lands exactly once, and
    every client pages through the same single timeline."""
    clients = [await new_client() for _ in range(3)]
    alice = clients[0]
    room_id = ok(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse).room_id
    await asyncio.gather(*(c.join(room_id) for c in clients[1:]))

    async def burst(client: AsyncClient, n: int) -> list[str]:
        results = await asyncio.gather(
            *(
                client.room_send(
                    room_id,
                    "m.room.message",
                    {"msgtype": "m.text", "body": f"{client.user_id} {i}"},
                )
                for i in range(n)
            )
        )
        return [ok(r, RoomSendResponse).event_id for r in results]

    sent = await asyncio.gather(*(burst(c, 15) for c in clients))
    all_sent = {event_id for batch in sent for event_id in batch}
    assert len(all_sent) == 45
    timelines = []
    for client in clients:
        response = ok(
            await client.room_messages(room_id, limit=100, direction=MessageDirection.front),
            RoomMessagesResponse,
        )
        timelines.append([e.event_id for e in response.chunk if isinstance(e, RoomMessageText)])
    assert timelines[0] == timelines[1] == timelines[2]
    assert sorted(timelines[0]) == sorted(all_sent)


async def test_state_with_nio(new_client: NewClient) -> None:
    alice, bob = await new_client(), await new_client()
    room_id = ok(
        await alice.room_create(preset=RoomPreset.private_chat, invite=[bob.user_id]),
        RoomCreateResponse,
    ).room_id
    ok(await bob.join(room_id), JoinResponse)
    refused = await bob.room_put_state(room_id, "m.room.name", {"name": "bob's"})
    assert not isinstance(refused, RoomPutStateResponse)
    assert refused.status_code == "M_FORBIDDEN"
    levels = await content_of(alice, room_id, "m.room.power_levels")
    levels["users"][bob.user_id] = 50
    ok(await alice.room_put_state(room_id, "m.room.power_levels", levels), RoomPutStateResponse)
    named = ok(
        await bob.room_put_state(room_id, "m.room.name", {"name": "bob's"}), RoomPutStateResponse
    )
    assert await content_of(alice, room_id, "m.room.name") == {"name": "bob's"}
    ok(
        await bob.room_put_state(room_id, "org.example.thing", {"n": 1}, state_key="a/b"),
        RoomPutStateResponse,
    )
    assert await content_of(alice, room_id, "org.example.thing", "a/b") == {"n": 1}
    missing = await alice.room_get_state_event(room_id, "m.room.topic")
    assert not isinstance(missing, RoomGetStateEventResponse)
    assert missing.status_code == "M_NOT_FOUND"
    state = await state_of(alice, room_id)
    assert state[("m.room.name", "")]["event_id"] == named.event_id


async def test_messages_context_and_redaction(new_client: NewClient) -> None:
    alice, bob = await new_client(), await new_client()
    room_id = ok(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse).room_id
    ok(await bob.join(room_id), JoinResponse)
    sent = []
    for i in range(25):
        client = alice if i % 2 == 0 else bob
        response = await client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": f"n{i}"}
        )
        sent.append(ok(response, RoomSendResponse).event_id)

    # Backwards in pages of 10, following `end`.
    seen: list[str] = []
    token = None
    for _ in range(20):
        page = ok(await alice.room_messages(room_id, start=token, limit=10), RoomMessagesResponse)
        seen += [e.event_id for e in page.chunk if isinstance(e, RoomMessageText)]
        if not page.end:
            break
        token = page.end
    assert seen == sent[::-1]
    # Forwards from the beginning, only bob's messages.
    page = ok(
        await alice.room_messages(
            room_id,
            start="s0",
            direction=MessageDirection.front,
            limit=100,
            message_filter={"senders": [bob.user_id], "types": ["m.room.message"]},
        ),
        RoomMessagesResponse,
    )
    assert [e.event_id for e in page.chunk] == sent[1::2]
    assert all(e.sender == bob.user_id for e in page.chunk)
    # Backwards with an end (the `to` token).
    newest = ok(await alice.room_messages(room_id, limit=5), RoomMessagesResponse)
    bounded = ok(
        await alice.room_messages(room_id, end=newest.end, limit=100), RoomMessagesResponse
    )
    assert [e.event_id for e in bounded.chunk] == sent[:-6:-1]

    context = ok(await bob.room_context(room_id, sent[12], limit=4), RoomContextResponse)
    assert context.event.event_id == sent[12]
    assert [e.event_id for e in context.events_before] == [sent[11], sent[10]]
    assert [e.event_id for e in context.events_after] == [sent[13], sent[14]]
    assert any(getattr(e, "state_key", None) == bob.user_id for e in context.state)

    # bob may not redact alice's message (redact 50); alice may redact bob's.
    refused = await bob.room_redact(room_id, sent[12], reason="no")
    assert not isinstance(refused, RoomRedactResponse)
    assert refused.status_code == "M_FORBIDDEN"
    tx_id = str(uuid.uuid4())
    redaction = ok(await alice.room_redact(room_id, sent[13], "rude", tx_id), RoomRedactResponse)
    again = ok(await alice.room_redact(room_id, sent[13], "rude", tx_id), RoomRedactResponse)
    assert again.event_id == redaction.event_id
    own = ok(await bob.room_redact(room_id, sent[11]), RoomRedactResponse)
    context = ok(await bob.room_context(room_id, sent[12], limit=2), RoomContextResponse)
    assert not isinstance(context.event, RedactedEvent)
    [redacted_by_bob] = context.events_before
    [redacted_by_alice] = context.events_after
    assert isinstance(redacted_by_alice, RedactedEvent)
    assert redacted_by_alice.redacter == alice.user_id
    assert redacted_by_alice.reason == "rude"
    assert redacted_by_alice.source["content"] == {}
    assert redacted_by_alice.source["unsigned"]["redacted_because"]["event_id"] == (
        redaction.event_id
    )
    assert isinstance(redacted_by_bob, RedactedEvent)
    assert redacted_by_bob.source["unsigned"]["redacted_because"]["event_id"] == own.event_id
    assert "n13" not in await texts(alice, room_id)
    assert "n11" not in await texts(alice, room_id)
    assert "n12" in await texts(alice, room_id)


# -- profiles -------------------------------------------------------------------------------


async def test_displayname_in_member_events(new_client: NewClient) -> None:
    alice, bob = await new_client(), await new_client()
    assert bob.user_id.startswith("@nio-room")
    room_id = ok(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse).room_id
    ok(await bob.join(room_id), JoinResponse)
    localpart = bob.user_id[1:].split(":")[0]
    members = ok(await alice.joined_members(room_id), JoinedMembersResponse)
    names = {m.user_id: m.display_name for m in members.members}
    assert names[bob.user_id] == localpart

    ok(await bob.set_displayname("Robert"), ProfileSetDisplayNameResponse)
    got = ok(await alice.get_displayname(bob.user_id), ProfileGetDisplayNameResponse)
    assert got.displayname == "Robert"
    second = ok(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse).room_id
    ok(await bob.join(second), JoinResponse)
    member = await content_of(alice, second, "m.room.member", bob.user_id)
    assert member["displayname"] == "Robert"
    members = ok(await alice.joined_members(second), JoinedMembersResponse)
    assert {m.user_id: m.display_name for m in members.members}[bob.user_id] == "Robert"
    assert mxid(localpart) == bob.user_id
