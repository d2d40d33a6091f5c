"""Room tagging: https://spec.matrix.org/latest/client-server-api/#room-tagging"""

from __future__ import annotations

from typing import Any

from litestar import delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.accounts.tags import Tags
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester


@get("/_matrix/client/v3/user/{user_id:str}/rooms/{room_id:str}/tags")
async def get_room_tags(
    tags: NamedDependency[Tags],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    room_id: FromPath[str],
) -> dict[str, Any]:
    """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"""
    return await tags.get(requester, path_value(user_id), path_value(room_id))


@put("/_matrix/client/v3/user/{user_id:str}/rooms/{room_id:str}/tags/{tag:str}")
async def set_room_tag(
    tags: NamedDependency[Tags],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    room_id: FromPath[str],
    tag: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
    await tags.add(requester, path_value(user_id), path_value(room_id), path_value(tag), data)
    return {}


@delete("/_matrix/client/v3/user/{user_id:str}/rooms/{room_id:str}/tags/{tag:str}", status_code=200)
async def delete_room_tag(
    tags: NamedDependency[Tags],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    room_id: FromPath[str],
    tag: FromPath[str],
) -> dict[str, Any]:
    """DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
    await tags.remove(requester, path_value(user_id), path_value(room_id), path_value(tag))
    return {}
