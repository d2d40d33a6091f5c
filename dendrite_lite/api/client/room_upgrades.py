"""Room upgrades: https://spec.matrix.org/latest/client-server-api/#room-upgrades"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.rooms.upgrades import RoomUpgrades


class UpgradeBody(msgspec.Struct, kw_only=True):
    new_version: str
    additional_creators: list[str] | None = None


@post("/_matrix/client/v3/rooms/{room_id:str}/upgrade", status_code=200)
async def upgrade_room(
    upgrades: NamedDependency[RoomUpgrades],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any,
) -> dict[str, str]:
    """POST /_matrix/client/v3/rooms/{roomId}/upgrade"""
    body = parse_body(data, UpgradeBody)
    replacement = await upgrades.upgrade(
        requester, path_value(room_id), body.new_version, body.additional_creators
    )
    return {"replacement_room": replacement}
