"""Room upgrades (POST /rooms/{roomId}/upgrade) against the real server: rooms set up
with matrix-nio, the upgrade itself and the checks over httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    RoomBanResponse,
    RoomCreateResponse,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomVisibility,
)

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, SERVER_NAME, User, expect, register_user, unique

CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
NioUser = tuple[AsyncClient, User]

COPIED = {
    "m.room.name": {"name": "Upgraded room"},
    "m.room.topic": {"topic": "Before and after"},
    "m.room.avatar": {"url": "mxc://localhost/avatar"},
    "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
    "m.room.server_acl": {"allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": False},
    "m.room.history_visibility": {"history_visibility": "world_readable"},
    "m.room.guest_access": {"guest_access": "can_join"},
    "m.room.join_rules": {"join_rule": "public"},
}


@pytest.fixture
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def nio_user(
    server: Server, http: httpx.Client
) -> AsyncIterator[Callable[[], Awaitable[NioUser]]]:
    clients: list[AsyncClient] = []

    async def make() -> NioUser:
        user = register_user(http, "upg")
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


async def upgrade(
    api: httpx.AsyncClient,
    user: User,
    room_id: str,
    body: Any,
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    response = await api.post(f"{CS}/rooms/{q(room_id)}/upgrade", headers=user.headers, json=body)
    return expect(response, status, errcode)


async def state(
    api: httpx.AsyncClient, user: User, room_id: str
) -> dict[tuple[str, str], dict[str, Any]]:
    events = expect(await api.get(f"{CS}/rooms/{q(room_id)}/state", headers=user.headers), 200)
    return {(event["type"], event["state_key"]): event for event in events}


async def joined_rooms(api: httpx.AsyncClient, user: User) -> list[str]:
    return sorted(
        expect(await api.get(f"{CS}/joined_rooms", headers=user.headers), 200)["joined_rooms"]
    )


async def timeline(api: httpx.AsyncClient, user: User, room_id: str) -> list[dict[str, Any]]:
    page = expect(
        await api.get(
            f"{CS}/rooms/{q(room_id)}/messages",
            headers=user.headers,
            params={"dir": "f", "limit": 100},
        ),
        200,
    )
    return list(page["chunk"])


async def create_room(client: AsyncClient, **kwargs: Any) -> str:
    created = await client.room_create(**kwargs)
    assert isinstance(created, RoomCreateResponse), created
    return created.room_id


async def put_state(
    client: AsyncClient, room_id: str, event_type: str, content: dict[str, Any], key: str = ""
) -> None:
    put = await client.room_put_state(room_id, event_type, content, key)
    assert isinstance(put, RoomPutStateResponse), put


async def test_upgrade_to_v12_moves_everything(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    member_client, member = await nio_user()
    banned_client, banned = await nio_user()
    alias_name = unique("upgraded")
    alias, alt = f"#{alias_name}:{SERVER_NAME}", f"#{unique('alt')}:{SERVER_NAME}"
    old = await create_room(
        owner_client, visibility=RoomVisibility.public, room_version="10", alias=alias_name
    )
    expect(
        await api.put(
            f"{CS}/directory/room/{q(alt)}", headers=owner.headers, json={"room_id": old}
        ),
        200,
    )
    for event_type, content in COPIED.items():
        await put_state(owner_client, old, event_type, content)
    await put_state(
        owner_client,
        old,
        "m.room.canonical_alias",
        {"alias": alias, "alt_aliases": [alt]},
    )
    # Not transferred: custom state.
    await put_state(owner_client, old, "org.example.custom", {"x": 1})
    for client in (member_client, banned_client):
        assert isinstance(await client.join(old), JoinResponse)
    ban = await owner_client.room_ban(old, banned.user_id, reason="spam")
    assert isinstance(ban, RoomBanResponse), ban
    old_power = (await state(api, owner, old))[("m.room.power_levels", "")]["content"]

    answer = await upgrade(
        api, owner, old, {"new_version": "12", "additional_creators": [member.user_id]}
    )
    new = answer["replacement_room"]
    assert answer == {"replacement_room": new} and new != old

    new_state = await state(api, owner, new)
    create = new_state[("m.room.create", "")]
    assert create["sender"] == owner.user_id
    assert create["content"] == {
        "room_version": "12",
        "predecessor": {"room_id": old},  # v12 may leave out the event ID
        "additional_creators": [member.user_id],
    }
    for event_type, content in COPIED.items():
        assert new_state[(event_type, "")]["content"] == content, event_type
    assert ("org.example.custom", "") not in new_state
    # Only the upgrader is joined; bans came along, invites and joins did not.
    memberships = {
        key[1]: event["content"]["membership"]
        for key, event in new_state.items()
        if key[0] == "m.room.member"
    }
    assert memberships == {owner.user_id: "join", banned.user_id: "ban"}
    assert new_state[("m.room.member", banned.user_id)]["content"]["reason"] == "spam"
    # v12: creators are not in the users map, tombstones need 150.
    power = new_state[("m.room.power_levels", "")]["content"]
    assert owner.user_id not in power["users"] and member.user_id not in power["users"]
    assert power["events"]["m.room.tombstone"] == 150
    assert {k: v for k, v in power.items() if k not in ("users", "events")} == {
        k: v for k, v in old_power.items() if k not in ("users", "events")
    }
    # Local aliases moved; the canonical alias split between the rooms.
    assert new_state[("m.room.canonical_alias", "")]["content"] == {
        "alias": alias,
        "alt_aliases": [alt],
    }
    for moved in (alias, alt):
        assert expect(await api.get(f"{CS}/directory/room/{q(moved)}"), 200)["room_id"] == new
    assert expect(await api.get(f"{CS}/rooms/{q(new)}/aliases", headers=owner.headers), 200)[
        "aliases"
    ] == sorted([alias, alt])
    # The directory entry moved too.
    assert expect(await api.get(f"{CS}/directory/list/room/{q(new)}"), 200) == {
        "visibility": "public"
    }
    assert expect(await api.get(f"{CS}/directory/list/room/{q(old)}"), 200) == {
        "visibility": "private"
    }

    old_state = await state(api, owner, old)
    tombstone = old_state[("m.room.tombstone", "")]
    assert tombstone["sender"] == owner.user_id
    assert tombstone["content"] == {"body": "This room has been replaced", "replacement_room": new}
    assert old_state[("m.room.canonical_alias", "")]["content"] == {}
    restricted = old_state[("m.room.power_levels", "")]["content"]
    assert (restricted["events_default"], restricted["invite"]) == (50, 50)
    # Ordinary members can no longer talk in the old room.
    refused = await member_client.room_send(
        old, "m.room.message", {"msgtype": "m.text", "body": "hi"}
    )
    assert not isinstance(refused, RoomSendResponse)
    assert refused.status_code == "M_FORBIDDEN"

    # The additional creator joins and has unbounded power there.
    assert isinstance(await member_client.join(new), JoinResponse)
    await put_state(member_client, new, "m.room.topic", {"topic": "creator power"})


async def test_upgrade_to_older_version_raises_then_restores_power(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    old = await create_room(
        owner_client,
        room_version="1",
        power_level_override={
            "users": {owner.user_id: 100},
            # More than the upgrader has: they need it to copy the ACL over.
            "events": {"m.room.server_acl": 120, "m.room.tombstone": 100},
        },
    )
    await put_state(owner_client, old, "m.room.name", {"name": "v1 room"})
    last = (await timeline(api, owner, old))[-1]["event_id"]

    new = (await upgrade(api, owner, old, {"new_version": "10"}))["replacement_room"]
    create = (await state(api, owner, new))[("m.room.create", "")]["content"]
    assert create == {
        "room_version": "10",
        "creator": owner.user_id,
        "predecessor": {"room_id": old, "event_id": last},
    }
    powers = [
        event["content"]
        for event in await timeline(api, owner, new)
        if event["type"] == "m.room.power_levels"
    ]
    assert [p["users"][owner.user_id] for p in powers] == [120, 100]
    assert powers[-1]["events"]["m.room.server_acl"] == 120
    assert (await state(api, owner, new))[("m.room.name", "")]["content"] == {"name": "v1 room"}
    # Rooms without join rules etc. of their own get the private_chat preset's.
    assert (await state(api, owner, new))[("m.room.join_rules", "")]["content"][
        "join_rule"
    ] == "invite"


async def test_upgrade_space_copies_children(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    space = await create_room(owner_client, space=True, name="A space")
    child = await create_room(owner_client)
    await put_state(owner_client, space, "m.space.child", {"via": [SERVER_NAME]}, child)
    await put_state(owner_client, space, "m.space.child", {}, "!removed:localhost")
    new = (await upgrade(api, owner, space, {"new_version": "11"}))["replacement_room"]
    new_state = await state(api, owner, new)
    assert new_state[("m.room.create", "")]["content"]["type"] == "m.space"
    assert new_state[("m.space.child", child)]["content"] == {"via": [SERVER_NAME]}
    assert ("m.space.child", "!removed:localhost") not in new_state


async def test_upgrade_repeated_gives_the_same_room(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    old = await create_room(owner_client, room_version="11")
    first = (await upgrade(api, owner, old, {"new_version": "12"}))["replacement_room"]
    assert (await upgrade(api, owner, old, {"new_version": "12"}))["replacement_room"] == first
    tombstones = [e for e in await timeline(api, owner, old) if e["type"] == "m.room.tombstone"]
    assert len(tombstones) == 1
    # Another version is another upgrade.
    other = (await upgrade(api, owner, old, {"new_version": "11"}))["replacement_room"]
    assert other not in (old, first)
    assert sorted(await joined_rooms(api, owner)) == sorted([old, first, other])


async def test_upgrade_refusals_leave_nothing_behind(
    nio_user: Callable[[], Awaitable[NioUser]], api: httpx.AsyncClient
) -> None:
    owner_client, owner = await nio_user()
    member_client, member = await nio_user()
    _, outsider = await nio_user()
    alias_name = unique("stays")
    old = await create_room(owner_client, visibility=RoomVisibility.public, alias=alias_name)
    assert isinstance(await member_client.join(old), JoinResponse)
    before_owner, before_member = await joined_rooms(api, owner), await joined_rooms(api, member)
    before_events = len(await timeline(api, owner, old))

    await upgrade(api, owner, old, {"new_version": "999"}, 400, "M_UNSUPPORTED_ROOM_VERSION")
    await upgrade(api, owner, old, {}, 400, "M_BAD_JSON")
    await upgrade(api, owner, old, {"new_version": 12}, 400, "M_BAD_JSON")
    await upgrade(
        api, owner, old, {"new_version": "12", "additional_creators": [5]}, 400, "M_BAD_JSON"
    )
    await upgrade(
        api, owner, old, {"new_version": "12", "additional_creators": "x"}, 400, "M_BAD_JSON"
    )
    await upgrade(
        api,
        owner,
        old,
        {"new_version": "12", "additional_creators": ["nobody"]},
        400,
        "M_INVALID_PARAM",
    )
    expect(
        await api.post(f"{CS}/rooms/{q(old)}/upgrade", headers=owner.headers, content=b"nope"),
        400,
        "M_NOT_JSON",
    )
    # Not enough power (a plain member), not a member, no such room, no token.
    await upgrade(api, member, old, {"new_version": "12"}, 403, "M_FORBIDDEN")
    await upgrade(api, outsider, old, {"new_version": "12"}, 403, "M_FORBIDDEN")
    await upgrade(api, owner, "!unknown:localhost", {"new_version": "12"}, 404, "M_NOT_FOUND")
    expect(await api.post(f"{CS}/rooms/{q(old)}/upgrade", json={"new_version": "12"}), 401)

    assert await joined_rooms(api, owner) == before_owner
    assert await joined_rooms(api, member) == before_member
    old_state = await state(api, owner, old)
    assert ("m.room.tombstone", "") not in old_state
    assert len(await timeline(api, owner, old)) == before_events
    alias = f"#{alias_name}:{SERVER_NAME}"
    assert expect(await api.get(f"{CS}/directory/room/{q(alias)}"), 200)["room_id"] == old
    assert expect(await api.get(f"{CS}/directory/list/room/{q(old)}"), 200) == {
        "visibility": "public"
    }
    # Additional creators are ignored (not validated) below v12.
    new = (
        await upgrade(api, owner, old, {"new_version": "11", "additional_creators": ["nobody"]})
    )["replacement_room"]
    assert (
        "additional_creators"
        not in (await state(api, owner, new))[("m.room.create", "")]["content"]
    )


# -- the pure parts the API cannot reach (legacy power levels, other servers' aliases) ----


def test_fixed_power_levels_turn_legacy_values_into_integers() -> None:
    from dendrite_lite.rooms.upgrades import fixed_power_levels

    legacy = {
        "ban": "50",
        "kick": 50.9,
        "invite": " +0 ",
        "redact": "lots",
        "events": {"m.room.name": "100", "m.room.topic": True},
        "users": {"@a:localhost": "75", "not a user": 100, "@b:localhost": 2**60},
        "notifications": {"room": 50.0},
        "custom": {"kept": [1]},
    }
    assert fixed_power_levels(legacy) == {
        "ban": 50,
        "kick": 50,
        "invite": 0,
        "events": {"m.room.name": 100},
        "users": {"@a:localhost": 75},
        "notifications": {"room": 50},
        "custom": {"kept": [1]},
    }


def test_canonical_alias_split_and_old_room_restriction() -> None:
    from dendrite_lite.events.pdu import Pdu
    from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS
    from dendrite_lite.notifier import Notifier
    from dendrite_lite.rooms.pipeline import EventCreator
    from dendrite_lite.rooms.upgrades import RoomUpgrades

    upgrades = RoomUpgrades(None, EventCreator("localhost"), Notifier(), "localhost")  # type: ignore[arg-type]
    old, new = upgrades._split_canonical_alias(
        {"alias": "#a:localhost", "alt_aliases": ["#b:localhost", "#c:example.org"], "x": 1}
    )
    assert old == {"alt_aliases": ["#c:example.org"], "x": 1}
    assert new == {"alias": "#a:localhost", "alt_aliases": ["#b:localhost"]}
    old, new = upgrades._split_canonical_alias({"alias": "#r:example.org"})
    assert (old, new) == ({"alias": "#r:example.org"}, {})

    def power(content: dict[str, object]) -> Pdu:
        event = {
            "type": "m.room.power_levels",
            "state_key": "",
            "sender": "@a:localhost",
            "room_id": "!r:localhost",
            "content": content,
            "prev_events": [],
            "auth_events": [],
            "depth": 1,
            "origin_server_ts": 0,
        }
        return Pdu.from_dict(event, KNOWN_ROOM_VERSIONS["10"], event_id="$p")

    restrict = RoomUpgrades._restricted_power_levels
    assert restrict(power({"users_default": 0})) == {
        "users_default": 0,
        "invite": 50,
        "events_default": 50,
    }
    assert restrict(power({"users_default": 60, "invite": 70, "events_default": 0})) == {
        "users_default": 60,
        "invite": 70,
        "events_default": 61,
    }
    assert restrict(power({"invite": 50, "events_default": 100})) is None
    assert restrict(None) is None
