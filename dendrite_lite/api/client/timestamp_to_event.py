"""https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidtimestamp_to_event"""

from __future__ import annotations

from typing import Any, Literal

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.rooms.timestamps import TimestampLookup


@get("/_matrix/client/v1/rooms/{room_id:str}/timestamp_to_event")
async def get_event_by_timestamp(
    timestamps: NamedDependency[TimestampLookup],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    ts: FromQuery[int],
    dir: FromQuery[Literal["f", "b"]],
) -> dict[str, Any]:
    """GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event"""
    return await timestamps.closest_event(requester, path_value(room_id), ts, dir == "f")
