"""Room aliases, the published room directory and timestamp_to_event, against the real
server: matrix-nio where it has the API, httpx elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    RoomCreateResponse,
    RoomDeleteAliasResponse,
    RoomGetStateEventResponse,
    RoomGetVisibilityResponse,
    RoomInviteResponse,
    RoomPutAliasResponse,
    RoomPutStateResponse,
    RoomResolveAliasError,
    RoomResolveAliasResponse,
    RoomSendResponse,
    RoomVisibility,
)

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, SERVER_NAME, User, expect, register_user, unique

CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
V1 = "/_matrix/client/v1"

NioUser = tuple[AsyncClient, User]


@pytest.fixture
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def nio_user(
    server: Server, http: httpx.Client
) -> AsyncIterator[Callable[[], Awaitable[NioUser]]]:
    """A factory of freshly registered users, each with a logged-in nio client."""
    clients: list[AsyncClient] = []

    async def make() -> NioUser:
        user = register_user(http, "dir")
        client = AsyncClient(server.url, user=user.user_id, device_id=user.device_id, config=CONFIG)
        client.access_token = user.access_token
        client.user_id = user.user_id
        clients.append(client)
        return client, user

    yield make
    for client in clients:
        await client.close()


def q(value: str) -> str:
    return quote(value, safe="")


def alias_path(alias: str) -> str:
    return f"{CS}/directory/room/{q(alias)}"


def local_alias(prefix: str = "a") -> str:
    return f"#{unique(prefix)}:{SERVER_NAME}"


async def create_room(client: AsyncClient, **kwargs: Any) -> str:
    created = await client.room_create(**kwargs)
    assert isinstance(created, RoomCreateResponse), created
    return created.room_id


async def join(client: AsyncClient, room_id: str) -> None:
    joined = await client.join(room_id)
    assert isinstance(joined, JoinResponse), joined


async def room_aliases(api: httpx.AsyncClient, user: User, room_id: str) -> list[str]:
    body = expect(await api.get(f"{CS}/rooms/{q(room_id)}/aliases", headers=user.headers), 200)
    return sorted(body["aliases"])


async def state_content(api: httpx.AsyncClient, user: User, room_id: str, event_type: str) -> Any:
    return expect(
        await api.get(f"{CS}/rooms/{q(room_id)}/state/{event_type}", headers=user.headers), 200
    )


# -- aliases --------------------------------------------------------------------------------


async def test_alias_create_resolve_list_delete(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    client, user = await nio_user()
    first = local_alias("room")
    room_id = await create_room(client, alias=first[1:].split(":")[0], name="Aliased")

    resolved = await client.room_resolve_alias(first)
    assert isinstance(resolved, RoomResolveAliasResponse), resolved
    assert (resolved.room_id, resolved.servers) == (room_id, [SERVER_NAME])

    second = local_alias("second")
    put = await client.room_put_alias(second, room_id)
    assert isinstance(put, RoomPutAliasResponse), put
    resolved = await client.room_resolve_alias(second)
    assert isinstance(resolved, RoomResolveAliasResponse), resolved
    assert resolved.room_id == room_id
    assert await room_aliases(api, user, room_id) == sorted([first, second])

    # Resolving needs no access token.
    body = expect(await api.get(alias_path(second)), 200)
    assert body == {"room_id": room_id, "servers": [SERVER_NAME]}

    deleted = await client.room_delete_alias(second)
    assert isinstance(deleted, RoomDeleteAliasResponse), deleted
    gone = await client.room_resolve_alias(second)
    assert isinstance(gone, RoomResolveAliasError), gone
    assert gone.status_code == "M_NOT_FOUND"
    assert await room_aliases(api, user, room_id) == [first]
    # A second delete finds nothing.
    expect(await api.delete(alias_path(second), headers=user.headers), 404, "M_NOT_FOUND")

    # Unicode (anything but ':' and NUL) is a valid localpart.
    fancy = f"#café-{unique('ü')}:{SERVER_NAME}"
    expect(await api.put(alias_path(fancy), headers=user.headers, json={"room_id": room_id}), 200)
    assert expect(await api.get(alias_path(fancy)), 200)["room_id"] == room_id


async def test_alias_bad_input_leaves_nothing(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    client, user = await nio_user()
    outsider_client, outsider = await nio_user()
    room_id = await create_room(client)
    headers = user.headers

    async def put(alias: str, body: Any, who: User = user) -> httpx.Response:
        return await api.put(alias_path(alias), headers=who.headers, json=body)

    long_alias = "#" + "x" * 250 + f":{SERVER_NAME}"
    for alias in (
        "nosigil:localhost",
        "#nocolon",
        "#bad:not a server",
        "#nul\x00:localhost",
        long_alias,
    ):
        expect(await put(alias, {"room_id": room_id}), 400, "M_INVALID_PARAM")
        expect(await api.get(alias_path(alias)), 400, "M_INVALID_PARAM")
        expect(await api.delete(alias_path(alias), headers=headers), 400, "M_INVALID_PARAM")
    # Only this server's aliases can be made here; no empty or whitespace localparts.
    for alias in ("#elsewhere:example.org", f"#:{SERVER_NAME}", f"#two words:{SERVER_NAME}"):
        expect(await put(alias, {"room_id": room_id}), 400, "M_INVALID_PARAM")

    alias = local_alias("bad")
    expect(await put(alias, {}), 400, "M_BAD_JSON")
    expect(await put(alias, {"room_id": 42}), 400, "M_BAD_JSON")
    null = await api.put(alias_path(alias), headers=headers, content=b"null")
    expect(null, 400, "M_BAD_JSON")
    expect(await api.put(alias_path(alias), headers=headers), 400, "M_NOT_JSON")
    expect(await put(alias, ["not", "an", "object"]), 400, "M_BAD_JSON")
    expect(await put(alias, {"room_id": "not-a-room"}), 400, "M_INVALID_PARAM")
    expect(await put(alias, {"room_id": f"!unknown:{SERVER_NAME}"}), 404, "M_NOT_FOUND")
    # Only members may point an alias at a room.
    expect(await put(alias, {"room_id": room_id}, outsider), 403, "M_FORBIDDEN")
    expect(await api.put(alias_path(alias), json={"room_id": room_id}), 401, "M_MISSING_TOKEN")

    # None of that made the alias.
    expect(await api.get(alias_path(alias)), 404, "M_NOT_FOUND")
    assert await room_aliases(api, user, room_id) == []
    # Another server's alias cannot be resolved without federation.
    expect(await api.get(alias_path("#somewhere:example.org")), 404, "M_NOT_FOUND")

    expect(await put(alias, {"room_id": room_id}), 200)
    # Taken: 409 M_UNKNOWN, whoever asks and whichever room.
    other_room = await create_room(outsider_client)
    expect(await put(alias, {"room_id": other_room}, outsider), 409, "M_UNKNOWN")
    expect(await put(alias, {"room_id": room_id}), 409, "M_UNKNOWN")
    assert expect(await api.get(alias_path(alias)), 200)["room_id"] == room_id


async def test_alias_delete_permissions_and_canonical_alias(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    member_client, member = await nio_user()
    bystander_client, bystander = await nio_user()
    room_id = await create_room(owner_client, visibility=RoomVisibility.public)
    await join(member_client, room_id)
    await join(bystander_client, room_id)

    main, alt, members_alias = local_alias("main"), local_alias("alt"), local_alias("mine")
    for alias in (main, alt):
        expect(
            await api.put(alias_path(alias), headers=owner.headers, json={"room_id": room_id}), 200
        )
    expect(
        await api.put(alias_path(members_alias), headers=member.headers, json={"room_id": room_id}),
        200,
    )
    put = await owner_client.room_put_state(
        room_id, "m.room.canonical_alias", {"alias": main, "alt_aliases": [alt, members_alias]}
    )
    assert isinstance(put, RoomPutStateResponse), put

    # Neither the alias's creator nor powerful: 403, and the alias stays.
    expect(await api.delete(alias_path(main), headers=bystander.headers), 403, "M_FORBIDDEN")
    expect(await api.get(alias_path(main)), 200)

    # The creator of an alias may delete it without power over the canonical alias: the
    # alias goes, the canonical alias event (which they may not change) stays.
    expect(await api.delete(alias_path(members_alias), headers=member.headers), 200)
    expect(await api.get(alias_path(members_alias)), 404, "M_NOT_FOUND")
    assert await state_content(api, owner, room_id, "m.room.canonical_alias") == {
        "alias": main,
        "alt_aliases": [alt, members_alias],
    }

    # A moderator deletes someone else's alias; the canonical alias drops just that one.
    expect(await api.delete(alias_path(alt), headers=owner.headers), 200)
    assert await state_content(api, owner, room_id, "m.room.canonical_alias") == {
        "alias": main,
        "alt_aliases": [members_alias],
    }
    expect(await api.delete(alias_path(main), headers=owner.headers), 200)
    state = await owner_client.room_get_state_event(room_id, "m.room.canonical_alias")
    assert isinstance(state, RoomGetStateEventResponse), state
    assert state.content == {"alt_aliases": [members_alias]}
    assert await room_aliases(api, owner, room_id) == []


async def test_local_aliases_visibility(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    client, user = await nio_user()
    _, outsider = await nio_user()
    alias = local_alias("seen")
    room_id = await create_room(client, alias=alias[1:].split(":")[0])
    path = f"{CS}/rooms/{q(room_id)}/aliases"
    expect(await api.get(path, headers=outsider.headers), 403, "M_FORBIDDEN")
    expect(await api.get(path), 401, "M_MISSING_TOKEN")
    expect(await api.get(f"{CS}/rooms/{q('!nope:localhost')}/aliases", headers=user.headers), 403)
    expect(
        await api.get(f"{CS}/rooms/not-a-room/aliases", headers=user.headers),
        400,
        "M_INVALID_PARAM",
    )
    # World-readable rooms show their aliases to anyone.
    put = await client.room_put_state(
        room_id, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    assert isinstance(put, RoomPutStateResponse), put
    assert await room_aliases(api, outsider, room_id) == [alias]


# -- publishing -----------------------------------------------------------------------------


async def test_room_visibility_in_directory(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    member_client, member = await nio_user()
    _, outsider = await nio_user()
    room_id = await create_room(owner_client, visibility=RoomVisibility.private)
    path = f"{CS}/directory/list/room/{q(room_id)}"

    seen = await owner_client.room_get_visibility(room_id)
    assert isinstance(seen, RoomGetVisibilityResponse), seen
    assert seen.visibility == "private"
    assert expect(await api.get(path), 200) == {"visibility": "private"}

    expect(await api.put(path, headers=owner.headers, json={"visibility": "public"}), 200)
    assert expect(await api.get(path), 200) == {"visibility": "public"}
    expect(await api.put(path, headers=owner.headers, json={"visibility": "private"}), 200)
    # The visibility defaults to public.
    expect(await api.put(path, headers=owner.headers, json={}), 200)
    assert expect(await api.get(path), 200) == {"visibility": "public"}

    # Bad input and missing power change nothing.
    expect(
        await api.put(path, headers=owner.headers, json={"visibility": "hidden"}),
        400,
        "M_INVALID_PARAM",
    )
    expect(await api.put(path, headers=owner.headers, json={"visibility": 1}), 400, "M_BAD_JSON")
    expect(
        await api.put(path, headers=outsider.headers, json={"visibility": "private"}),
        403,
        "M_FORBIDDEN",
    )
    invite = await owner_client.room_invite(room_id, member.user_id)
    assert isinstance(invite, RoomInviteResponse), invite
    await join(member_client, room_id)
    expect(
        await api.put(path, headers=member.headers, json={"visibility": "private"}),
        403,
        "M_FORBIDDEN",
    )
    expect(await api.put(path, json={"visibility": "private"}), 401, "M_MISSING_TOKEN")
    assert expect(await api.get(path), 200) == {"visibility": "public"}

    unknown = f"{CS}/directory/list/room/{q('!unknown:localhost')}"
    expect(await api.get(unknown), 404, "M_NOT_FOUND")
    expect(
        await api.put(unknown, headers=owner.headers, json={"visibility": "public"}),
        404,
        "M_NOT_FOUND",
    )
    expect(await api.get(f"{CS}/directory/list/room/not-a-room"), 400, "M_INVALID_PARAM")


async def public_rooms(
    api: httpx.AsyncClient, user: User, body: dict[str, Any], **params: Any
) -> Any:
    return expect(
        await api.post(f"{CS}/publicRooms", headers=user.headers, json=body, params=params), 200
    )


async def test_public_rooms_listing_filters_and_pagination(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    friend_client, _ = await nio_user()
    term = unique("findme")
    alias = local_alias("listed")

    big = await create_room(
        owner_client,
        visibility=RoomVisibility.public,
        alias=alias[1:].split(":")[0],
        name=f"Big {term}",
        topic="All about big things",
    )
    await join(friend_client, big)
    for event_type, content in (
        ("m.room.avatar", {"url": "mxc://localhost/big"}),
        ("m.room.history_visibility", {"history_visibility": "world_readable"}),
        ("m.room.guest_access", {"guest_access": "can_join"}),
    ):
        put = await owner_client.room_put_state(big, event_type, content)
        assert isinstance(put, RoomPutStateResponse), put
    space = await create_room(
        owner_client, visibility=RoomVisibility.public, name=f"Space {term}", space=True
    )
    # Matched by topic only; and a private room that must never show.
    small = await create_room(owner_client, visibility=RoomVisibility.public, topic=f"about {term}")
    await create_room(owner_client, visibility=RoomVisibility.private, name=f"Hidden {term}")

    everything = await public_rooms(api, owner, {"filter": {"generic_search_term": term.upper()}})
    chunk = everything["chunk"]
    assert [room["room_id"] for room in chunk[:1]] == [big]  # most members first
    assert {room["room_id"] for room in chunk} == {big, space, small}
    assert everything["total_room_count_estimate"] >= 3
    assert "next_batch" not in everything and "prev_batch" not in everything
    by_id = {room["room_id"]: room for room in chunk}
    assert by_id[big] == {
        "room_id": big,
        "num_joined_members": 2,
        "world_readable": True,
        "guest_can_join": True,
        "name": f"Big {term}",
        "topic": "All about big things",
        "avatar_url": "mxc://localhost/big",
        "canonical_alias": alias,
        "join_rule": "public",
    }
    assert by_id[space]["room_type"] == "m.space"
    assert by_id[small]["topic"] == f"about {term}"
    assert by_id[small]["world_readable"] is False and by_id[small]["guest_can_join"] is False
    assert "name" not in by_id[small] and "room_type" not in by_id[small]

    # By alias too; and room_types (null: rooms without a type).
    assert [
        r["room_id"]
        for r in (await public_rooms(api, owner, {"filter": {"generic_search_term": alias}}))[
            "chunk"
        ]
    ] == [big]
    spaces = await public_rooms(
        api, owner, {"filter": {"generic_search_term": term, "room_types": ["m.space"]}}
    )
    assert [room["room_id"] for room in spaces["chunk"]] == [space]
    untyped = await public_rooms(
        api, owner, {"filter": {"generic_search_term": term, "room_types": [None]}}
    )
    assert {room["room_id"] for room in untyped["chunk"]} == {big, small}
    both = await public_rooms(
        api, owner, {"filter": {"generic_search_term": term, "room_types": [None, "m.space"]}}
    )
    assert len(both["chunk"]) == 3
    assert (
        await public_rooms(api, owner, {"filter": {"generic_search_term": term, "room_types": []}})
    )["chunk"] == []
    # No application service networks: nothing under one.
    assert (await public_rooms(api, owner, {"third_party_instance_id": "irc"}))["chunk"] == []

    # One room a page: forwards, then back again with prev_batch.
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    body: dict[str, Any] = {"limit": 1, "filter": {"generic_search_term": term}}
    while True:
        page = await public_rooms(api, owner, body)
        pages.append(page)
        assert len(page["chunk"]) == 1
        seen.append(page["chunk"][0]["room_id"])
        if "next_batch" not in page:
            break
        body = {**body, "since": page["next_batch"]}
    assert seen[0] == big and sorted(seen) == sorted([big, space, small])
    assert "prev_batch" not in pages[0] and all("prev_batch" in p for p in pages[1:])
    back = await public_rooms(api, owner, {**body, "since": pages[-1]["prev_batch"]})
    assert [room["room_id"] for room in back["chunk"]] == [seen[-2]]
    assert "next_batch" in back

    # GET needs no token; server= our own name is the local directory.
    listed = expect(await api.get(f"{CS}/publicRooms", params={"server": SERVER_NAME}), 200)
    assert listed["total_room_count_estimate"] >= 3 and listed["chunk"]
    first = expect(await api.get(f"{CS}/publicRooms", params={"limit": 1}), 200)
    assert len(first["chunk"]) == 1 and "next_batch" in first
    second = expect(
        await api.get(f"{CS}/publicRooms", params={"limit": 1, "since": first["next_batch"]}), 200
    )
    assert second["chunk"] != first["chunk"]


async def test_public_rooms_bad_input(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    _, user = await nio_user()
    get = f"{CS}/publicRooms"
    expect(await api.get(get, params={"since": "garbage!"}), 400, "M_INVALID_PARAM")
    expect(
        await api.get(get, params={"since": "WyJ4IiwxLCIhYSJd"}), 400, "M_INVALID_PARAM"
    )  # ["x",1,"!a"]
    expect(await api.get(get, params={"limit": "many"}), 400, "M_INVALID_PARAM")
    expect(await api.get(get, params={"limit": -1}), 400, "M_INVALID_PARAM")
    expect(await api.get(get, params={"server": "not a server"}), 400, "M_INVALID_PARAM")
    # Other servers' directories need federation.
    expect(await api.get(get, params={"server": "example.org"}), 404, "M_NOT_FOUND")
    post = await api.post(get, headers=user.headers, json={}, params={"server": "example.org"})
    expect(post, 404, "M_NOT_FOUND")
    for body in (
        {"limit": "ten"},
        {"limit": "10"},
        {"limit": 10.0},
        {"include_all_networks": "false"},
        {"since": 5},
        {"filter": {"generic_search_term": 5}},
        {"filter": {"room_types": "m.space"}},
        {"filter": []},
    ):
        expect(await api.post(get, headers=user.headers, json=body), 400, "M_BAD_JSON")
    expect(await api.post(get, headers=user.headers, content=b"{not json"), 400, "M_NOT_JSON")
    expect(
        await api.post(get, headers=user.headers, json={"since": "garbage!"}),
        400,
        "M_INVALID_PARAM",
    )
    expect(await api.post(get, json={}), 401, "M_MISSING_TOKEN")


# -- timestamp_to_event ---------------------------------------------------------------------


def ts_path(room_id: str) -> str:
    return f"{V1}/rooms/{q(room_id)}/timestamp_to_event"


async def send_text(client: AsyncClient, room_id: str, body: str) -> str:
    sent = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(sent, RoomSendResponse), sent
    return sent.event_id


async def test_timestamp_to_event(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    late_client, late = await nio_user()
    _, outsider = await nio_user()
    room_id = await create_room(owner_client, visibility=RoomVisibility.public)
    put = await owner_client.room_put_state(
        room_id, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    assert isinstance(put, RoomPutStateResponse), put
    sent: list[tuple[str, int]] = []
    for n in range(3):
        await asyncio.sleep(0.005)
        event_id = await send_text(owner_client, room_id, f"message {n}")
        event = expect(
            await api.get(f"{CS}/rooms/{q(room_id)}/event/{q(event_id)}", headers=owner.headers),
            200,
        )
        sent.append((event_id, event["origin_server_ts"]))
    (m0, t0), (m1, t1), (m2, t2) = sent
    assert t0 < t1 < t2

    async def find(
        user: User, ts: int, direction: str, status: int = 200, errcode: str | None = None
    ) -> Any:
        response = await api.get(
            ts_path(room_id), headers=user.headers, params={"ts": ts, "dir": direction}
        )
        return expect(response, status, errcode)

    assert await find(owner, t1, "f") == {"event_id": m1, "origin_server_ts": t1}
    assert await find(owner, t1, "b") == {"event_id": m1, "origin_server_ts": t1}
    assert (await find(owner, t1 + 1, "f"))["event_id"] == m2
    assert (await find(owner, t1 - 1, "b"))["event_id"] == m0
    await find(owner, t2 + 3_600_000, "f", 404, "M_NOT_FOUND")
    assert (await find(owner, 0, "f"))["event_id"].startswith("$")  # the room's first event
    await find(owner, 0, "b", 404, "M_NOT_FOUND")

    # History visibility applies: a later joiner of a room that became "joined" before
    # the messages skips them, back to what was shared before the change.
    await join(late_client, room_id)
    before = await find(late, t2, "b")
    assert before["event_id"] not in {m0, m1, m2} and before["origin_server_ts"] < t0
    hidden = expect(
        await api.get(
            f"{CS}/rooms/{q(room_id)}/event/{q(before['event_id'])}", headers=late.headers
        ),
        200,
    )
    assert hidden["type"] == "m.room.history_visibility"
    own_join = await find(late, t0, "f")  # skips the messages, lands on their own join
    assert own_join["event_id"] not in {m0, m1, m2}
    await find(outsider, t1, "f", 403, "M_FORBIDDEN")

    bad = ts_path(room_id)
    expect(await api.get(bad, headers=owner.headers, params={"dir": "f"}), 400, "M_MISSING_PARAM")
    expect(await api.get(bad, headers=owner.headers, params={"ts": t1}), 400, "M_MISSING_PARAM")
    expect(
        await api.get(bad, headers=owner.headers, params={"ts": t1, "dir": "x"}),
        400,
        "M_INVALID_PARAM",
    )
    expect(
        await api.get(bad, headers=owner.headers, params={"ts": "noon", "dir": "f"}),
        400,
        "M_INVALID_PARAM",
    )
    expect(await api.get(bad, params={"ts": t1, "dir": "f"}), 401, "M_MISSING_TOKEN")
    unknown = ts_path("!unknown:localhost")
    expect(
        await api.get(unknown, headers=owner.headers, params={"ts": t1, "dir": "f"}),
        403,
        "M_FORBIDDEN",
    )


async def test_admins_manage_any_room(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient, server: Server
) -> None:
    owner_client, owner = await nio_user()
    _, admin = await nio_user()
    server.cli("user", "set-admin", admin.localpart)
    room_id = await create_room(owner_client, visibility=RoomVisibility.private)
    alias = local_alias("owned")
    expect(await api.put(alias_path(alias), headers=owner.headers, json={"room_id": room_id}), 200)

    # Not in the room, yet: sees its aliases, adds one, publishes it, deletes an alias.
    assert await room_aliases(api, admin, room_id) == [alias]
    added = local_alias("admins")
    expect(await api.put(alias_path(added), headers=admin.headers, json={"room_id": room_id}), 200)
    path = f"{CS}/directory/list/room/{q(room_id)}"
    expect(await api.put(path, headers=admin.headers, json={"visibility": "public"}), 200)
    assert expect(await api.get(path), 200) == {"visibility": "public"}
    expect(await api.delete(alias_path(alias), headers=admin.headers), 200)
    assert await room_aliases(api, owner, room_id) == [added]
    unknown = f"{CS}/rooms/{q('!unknown:localhost')}/aliases"
    expect(await api.get(unknown, headers=admin.headers), 404, "M_NOT_FOUND")
