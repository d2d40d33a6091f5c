"""Room creation and membership: https://spec.matrix.org/latest/client-server-api/#rooms"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.rooms.creation import CreateRoomRequest, RoomCreation
from dendrite_lite.rooms.membership import Membership


class CreateRoomBody(msgspec.Struct, kw_only=True):
    visibility: str = "private"
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = msgspec.field(default_factory=list)
    invite_3pid: list[dict[str, Any]] = msgspec.field(default_factory=list)
    room_version: str | None = None
    creation_content: dict[str, Any] = msgspec.field(default_factory=dict)
    initial_state: list[dict[str, Any]] = msgspec.field(default_factory=list)
    preset: str | None = None
    is_direct: bool = False
    power_level_content_override: dict[str, Any] | None = None


class ReasonBody(msgspec.Struct, kw_only=True):
    reason: str | None = None


class TargetBody(msgspec.Struct, kw_only=True):
    user_id: str
    reason: str | None = None


class InviteBody(msgspec.Struct, kw_only=True):
    user_id: str
    reason: str | None = None
    is_direct: bool = False


@post("/_matrix/client/v3/createRoom", status_code=200)
async def create_room(
    room_creation: NamedDependency[RoomCreation],
    requester: NamedDependency[Requester],
    data: Any,
) -> dict[str, str]:
    """POST /_matrix/client/v3/createRoom"""
    body = parse_body(data, CreateRoomBody)
    if body.invite_3pid:
        raise MatrixError(400, ErrCode.UNRECOGNIZED, "Third-party invites need an identity server")
    room_id = await room_creation.create_room(
        requester.user_id,
        CreateRoomRequest(
            visibility=body.visibility,
            room_alias_name=body.room_alias_name,
            name=body.name,
            topic=body.topic,
            invite=body.invite,
            room_version=body.room_version,
            creation_content=body.creation_content,
            initial_state=body.initial_state,
            preset=body.preset,
            is_direct=body.is_direct,
            power_level_content_override=body.power_level_content_override,
        ),
    )
    return {"room_id": room_id}


@get("/_matrix/client/v3/joined_rooms")
async def get_joined_rooms(
    membership: NamedDependency[Membership], requester: NamedDependency[Requester]
) -> dict[str, list[str]]:
    """GET /_matrix/client/v3/joined_rooms"""
    return {"joined_rooms": await membership.joined_rooms(requester.user_id)}


@post("/_matrix/client/v3/join/{room_id_or_alias:str}", status_code=200)
async def join_room(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id_or_alias: FromPath[str],
    data: Any = None,
) -> dict[str, str]:
    """POST /_matrix/client/v3/join/{roomIdOrAlias}"""
    body = parse_body(data, ReasonBody, default=ReasonBody())
    room_id = await membership.join(
        requester.user_id,
        path_value(room_id_or_alias),
        body.reason,
        is_guest=requester.is_guest,
    )
    return {"room_id": room_id}


@post("/_matrix/client/v3/rooms/{room_id:str}/join", status_code=200)
async def join_room_by_id(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any = None,
) -> dict[str, str]:
    """POST /_matrix/client/v3/rooms/{roomId}/join"""
    body = parse_body(data, ReasonBody, default=ReasonBody())
    room_id = path_value(room_id)
    joined = await membership.join(
        requester.user_id, room_id, body.reason, is_guest=requester.is_guest
    )
    return {"room_id": joined}


@post("/_matrix/client/v3/knock/{room_id_or_alias:str}", status_code=200)
async def knock_room(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id_or_alias: FromPath[str],
    data: Any = None,
) -> dict[str, str]:
    """POST /_matrix/client/v3/knock/{roomIdOrAlias}"""
    body = parse_body(data, ReasonBody, default=ReasonBody())
    room_id = await membership.knock(requester.user_id, path_value(room_id_or_alias), body.reason)
    return {"room_id": room_id}


@post("/_matrix/client/v3/rooms/{room_id:str}/leave", status_code=200)
async def leave_room(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/leave"""
    body = parse_body(data, ReasonBody, default=ReasonBody())
    await membership.leave(requester.user_id, path_value(room_id), body.reason)
    return {}


@post("/_matrix/client/v3/rooms/{room_id:str}/forget", status_code=200)
async def forget_room(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/forget"""
    await membership.forget(requester.user_id, path_value(room_id))
    return {}


@post("/_matrix/client/v3/rooms/{room_id:str}/invite", status_code=200)
async def invite_user(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/invite"""
    body = parse_body(data, InviteBody)
    await membership.invite(
        requester.user_id, path_value(room_id), body.user_id, body.reason, body.is_direct
    )
    return {}


@post("/_matrix/client/v3/rooms/{room_id:str}/kick", status_code=200)
async def kick_user(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/kick"""
    body = parse_body(data, TargetBody)
    await membership.kick(requester.user_id, path_value(room_id), body.user_id, body.reason)
    return {}


@post("/_matrix/client/v3/rooms/{room_id:str}/ban", status_code=200)
async def ban_user(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/ban"""
    body = parse_body(data, TargetBody)
    await membership.ban(requester.user_id, path_value(room_id), body.user_id, body.reason)
    return {}


@post("/_matrix/client/v3/rooms/{room_id:str}/unban", status_code=200)
async def unban_user(
    membership: NamedDependency[Membership],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/unban"""
    body = parse_body(data, TargetBody)
    await membership.unban(requester.user_id, path_value(room_id), body.user_id, body.reason)
    return {}
