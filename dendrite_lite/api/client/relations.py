"""Event relationships: https://spec.matrix.org/latest/client-server-api/#relationships-api"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, Parameter

from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.rooms.relations import Relations

BASE = "/_matrix/client/v1/rooms/{room_id:str}/relations/{event_id:str}"


async def _children(
    relations: Relations,
    requester: Requester,
    room_id: str,
    event_id: str,
    rel_type: str | None,
    event_type: str | None,
    from_: str | None,
    to: str | None,
    limit: int | None,
    dir: str,
    recurse: bool | None,
) -> dict[str, Any]:
    return await relations.children(
        requester,
        path_value(room_id),
        path_value(event_id),
        rel_type=None if rel_type is None else path_value(rel_type),
        event_type=None if event_type is None else path_value(event_type),
        from_token=from_,
        to_token=to,
        limit=limit,
        backwards=dir == "b",
        recurse=recurse,
    )


@get(BASE)
async def get_relating_events(
    relations: NamedDependency[Relations],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_id: FromPath[str],
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    dir: FromQuery[Literal["b", "f"]] = "b",
    recurse: FromQuery[bool | None] = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}"""
    return await _children(
        relations, requester, room_id, event_id, None, None, from_, to, limit, dir, recurse
    )


@get(BASE + "/{rel_type:str}")
async def get_relating_events_with_rel_type(
    relations: NamedDependency[Relations],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_id: FromPath[str],
    rel_type: FromPath[str],
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    dir: FromQuery[Literal["b", "f"]] = "b",
    recurse: FromQuery[bool | None] = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}"""
    return await _children(
        relations, requester, room_id, event_id, rel_type, None, from_, to, limit, dir, recurse
    )


@get(BASE + "/{rel_type:str}/{event_type:str}")
async def get_relating_events_with_rel_type_and_event_type(
    relations: NamedDependency[Relations],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_id: FromPath[str],
    rel_type: FromPath[str],
    event_type: FromPath[str],
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    dir: FromQuery[Literal["b", "f"]] = "b",
    recurse: FromQuery[bool | None] = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}"""
    return await _children(
        relations,
        requester,
        room_id,
        event_id,
        rel_type,
        event_type,
        from_,
        to,
        limit,
        dir,
        recurse,
    )
