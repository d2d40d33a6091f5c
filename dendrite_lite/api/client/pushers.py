"""Pushers: https://spec.matrix.org/latest/client-server-api/#client-behaviour-15"""

from __future__ import annotations

from typing import Any

from litestar import get, post
from litestar.di import NamedDependency

from dendrite_lite.api.body import parse_body
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.push.service import PusherBody, Pushers


@get("/_matrix/client/v3/pushers")
async def get_pushers(
    pushers: NamedDependency[Pushers], requester: NamedDependency[Requester]
) -> dict[str, Any]:
    """GET /_matrix/client/v3/pushers"""
    return {"pushers": await pushers.list(requester)}


@post("/_matrix/client/v3/pushers/set", status_code=200)
async def post_pusher(
    pushers: NamedDependency[Pushers], requester: NamedDependency[Requester], data: Any
) -> dict[str, Any]:
    """POST /_matrix/client/v3/pushers/set"""
    await pushers.set(requester, parse_body(data, PusherBody))
    return {}


ROUTES = [get_pushers, post_pusher]
