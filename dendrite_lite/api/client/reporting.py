"""Reporting content: https://spec.matrix.org/latest/client-server-api/#reporting-content"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.rooms.reports import Reports


class EventReportBody(msgspec.Struct, kw_only=True):
    reason: str | None = None
    score: int | None = None


class RoomReportBody(msgspec.Struct, kw_only=True):
    reason: str


@post("/_matrix/client/v3/rooms/{room_id:str}/report/{event_id:str}", status_code=200)
async def report_event(
    reports: NamedDependency[Reports],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}"""
    body = parse_body(data, EventReportBody)
    await reports.report_event(
        requester, path_value(room_id), path_value(event_id), body.reason, body.score
    )
    return {}


@post("/_matrix/client/v3/rooms/{room_id:str}/report", status_code=200)
async def report_room(
    reports: NamedDependency[Reports],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/report"""
    body = parse_body(data, RoomReportBody)
    await reports.report_room(requester, path_value(room_id), body.reason)
    return {}
