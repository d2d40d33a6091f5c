"""Room aliases and the published room directory.

https://spec.matrix.org/latest/client-server-api/#room-aliases
https://spec.matrix.org/latest/client-server-api/#published-room-directory
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.rooms.directory import Directory, check_room_id


class AliasBody(msgspec.Struct, kw_only=True):
    room_id: str


class VisibilityBody(msgspec.Struct, kw_only=True):
    visibility: str = "public"


class PublicRoomsFilter(msgspec.Struct, kw_only=True):
    generic_search_term: str | None = None
    room_types: list[str | None] | None = None


class PublicRoomsBody(msgspec.Struct, kw_only=True):
    limit: int | None = None
    since: str | None = None
    filter: PublicRoomsFilter | None = None
    include_all_networks: bool = False
    third_party_instance_id: str | None = None


@put("/_matrix/client/v3/directory/room/{room_alias:str}", status_code=200)
async def set_room_alias(
    directory: NamedDependency[Directory],
    requester: NamedDependency[Requester],
    room_alias: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/directory/room/{roomAlias}"""
    body = parse_body(data, AliasBody)
    await directory.create_alias(requester, path_value(room_alias), body.room_id)
    return {}


@get("/_matrix/client/v3/directory/room/{room_alias:str}")
async def get_room_id_by_alias(
    directory: NamedDependency[Directory], room_alias: FromPath[str]
) -> dict[str, Any]:
    """GET /_matrix/client/v3/directory/room/{roomAlias}"""
    return await directory.resolve_alias(path_value(room_alias))


@delete("/_matrix/client/v3/directory/room/{room_alias:str}", status_code=200)
async def delete_room_alias(
    directory: NamedDependency[Directory],
    requester: NamedDependency[Requester],
    room_alias: FromPath[str],
) -> dict[str, Any]:
    """DELETE /_matrix/client/v3/directory/room/{roomAlias}"""
    await directory.delete_alias(requester, path_value(room_alias))
    return {}


@get("/_matrix/client/v3/rooms/{room_id:str}/aliases")
async def get_local_aliases(
    directory: NamedDependency[Directory],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
) -> dict[str, list[str]]:
    """GET /_matrix/client/v3/rooms/{roomId}/aliases"""
    return {"aliases": await directory.local_aliases(requester, path_value(room_id))}


@get("/_matrix/client/v3/directory/list/room/{room_id:str}")
async def get_room_visibility_on_directory(
    directory: NamedDependency[Directory], room_id: FromPath[str]
) -> dict[str, str]:
    """GET /_matrix/client/v3/directory/list/room/{roomId}"""
    room = path_value(room_id)
    check_room_id(room)
    return {"visibility": await directory.visibility(room)}


@put("/_matrix/client/v3/directory/list/room/{room_id:str}", status_code=200)
async def set_room_visibility_on_directory(
    directory: NamedDependency[Directory],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/directory/list/room/{roomId}"""
    body = parse_body(data, VisibilityBody)
    room = path_value(room_id)
    check_room_id(room)
    await directory.set_visibility(requester, room, body.visibility)
    return {}


@get("/_matrix/client/v3/publicRooms")
async def get_public_rooms(
    directory: NamedDependency[Directory],
    limit: FromQuery[int | None] = None,
    since: FromQuery[str | None] = None,
    server: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v3/publicRooms (no access token needed)"""
    return await directory.public_rooms(server=server, limit=limit, since=since)


@post("/_matrix/client/v3/publicRooms", status_code=200)
async def query_public_rooms(
    directory: NamedDependency[Directory],
    requester: NamedDependency[Requester],
    data: Any,
    server: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/publicRooms"""
    body = parse_body(data, PublicRoomsBody)
    room_filter = body.filter or PublicRoomsFilter()
    return await directory.public_rooms(
        server=server,
        limit=body.limit,
        since=body.since,
        search=room_filter.generic_search_term,
        room_types=room_filter.room_types,
        third_party_instance_id=None if body.include_all_networks else body.third_party_instance_id,
    )
