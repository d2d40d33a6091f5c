"""Presence: https://spec.matrix.org/latest/client-server-api/#presence"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.presence import Presence


class SetPresenceBody(msgspec.Struct, kw_only=True):
    presence: str
    status_msg: str | None = None


@get("/_matrix/client/v3/presence/{user_id:str}/status")
async def get_presence(
    presence: NamedDependency[Presence],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
) -> dict[str, Any]:
    """GET /_matrix/client/v3/presence/{userId}/status"""
    return await presence.get_status(requester, path_value(user_id))


@put("/_matrix/client/v3/presence/{user_id:str}/status")
async def set_presence(
    presence: NamedDependency[Presence],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/presence/{userId}/status"""
    body = parse_body(data, SetPresenceBody)
    await presence.set_status(requester, path_value(user_id), body.presence, body.status_msg)
    return {}
