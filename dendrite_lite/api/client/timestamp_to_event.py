"""https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidtimestamp_to_event"""

from __future__ import annotations

import re
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import invalid_param, missing_param
from dendrite_lite.rooms.timestamps import TimestampLookup

_INTEGER = re.compile(r"-?[0-9]{1,16}")
# A timestamp is a JSON integer: https://spec.matrix.org/latest/appendices/#canonical-json
_MAX_TS = 2**53 - 1


@get("/_matrix/client/v1/rooms/{room_id:str}/timestamp_to_event")
async def get_event_by_timestamp(
    timestamps: NamedDependency[TimestampLookup],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    # Optional here and checked below: Litestar rejects a missing required query
    # parameter before it resolves dependencies, which would answer 400 before 401.
    ts: FromQuery[str | None] = None,
    dir: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event"""
    if ts is None:
        raise missing_param("Missing parameter ts")
    if dir is None:
        raise missing_param("Missing parameter dir")
    if not _INTEGER.fullmatch(ts) or abs(int(ts)) > _MAX_TS:
        raise invalid_param("Invalid parameter ts: expected an integer (milliseconds)")
    if dir not in ("f", "b"):
        raise invalid_param("Invalid parameter dir: expected 'f' or 'b'")
    return await timestamps.closest_event(requester, path_value(room_id), int(ts), dir == "f")
