"""Events in rooms: sending, state, reading, pagination, context, redaction.

https://spec.matrix.org/latest/client-server-api/#events
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, Parameter

from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.filters import parse_room_event_filter
from dendrite_lite.rooms import client_format
from dendrite_lite.rooms.reading import RoomReading
from dendrite_lite.rooms.sending import Sending


class RedactBody(msgspec.Struct, kw_only=True):
    reason: str | None = None


class MessagesResponse(msgspec.Struct, omit_defaults=True):
    chunk: list[msgspec.Raw]
    start: str
    end: str | None = None
    state: list[msgspec.Raw] | None = None


@put("/_matrix/client/v3/rooms/{room_id:str}/send/{event_type:str}/{txn_id:str}")
async def send_message(
    sending: NamedDependency[Sending],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_type: FromPath[str],
    txn_id: FromPath[str],
    data: Any,
) -> dict[str, str]:
    """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"""
    event_id = await sending.send(
        requester, path_value(room_id), path_value(event_type), path_value(txn_id), data
    )
    return {"event_id": event_id}


@put("/_matrix/client/v3/rooms/{room_id:str}/state/{event_type:str}")
async def set_room_state_empty_key(
    sending: NamedDependency[Sending],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_type: FromPath[str],
    data: Any,
) -> dict[str, str]:
    """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}"""
    event_id = await sending.set_state(
        requester, path_value(room_id), path_value(event_type), "", data
    )
    return {"event_id": event_id}


@put("/_matrix/client/v3/rooms/{room_id:str}/state/{event_type:str}/{state_key:path}")
async def set_room_state(
    sending: NamedDependency[Sending],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_type: FromPath[str],
    state_key: FromPath[Any],
    data: Any,
) -> dict[str, str]:
    """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
    event_id = await sending.set_state(
        requester, path_value(room_id), path_value(event_type), _state_key(state_key), data
    )
    return {"event_id": event_id}


@get("/_matrix/client/v3/rooms/{room_id:str}/state")
async def get_room_state(
    reading: NamedDependency[RoomReading],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
) -> list[msgspec.Raw]:
    """GET /_matrix/client/v3/rooms/{roomId}/state"""
    return await reading.get_state(requester, path_value(room_id))


@get("/_matrix/client/v3/rooms/{room_id:str}/state/{event_type:str}")
async def get_room_state_empty_key(
    reading: NamedDependency[RoomReading],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_type: FromPath[str],
    format: FromQuery[Literal["content", "event"]] = "content",
) -> msgspec.Raw:
    """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}"""
    row = await reading.get_state_event(requester, path_value(room_id), path_value(event_type), "")
    return _state_answer(row, format)


@get("/_matrix/client/v3/rooms/{room_id:str}/state/{event_type:str}/{state_key:path}")
async def get_room_state_event(
    reading: NamedDependency[RoomReading],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_type: FromPath[str],
    state_key: FromPath[Any],
    format: FromQuery[Literal["content", "event"]] = "content",
) -> msgspec.Raw:
    """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
    row = await reading.get_state_event(
        requester, path_value(room_id), path_value(event_type), _state_key(state_key)
    )
    return _state_answer(row, format)


@get("/_matrix/client/v3/rooms/{room_id:str}/event/{event_id:str}")
async def get_one_room_event(
    reading: NamedDependency[RoomReading],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_id: FromPath[str],
) -> msgspec.Raw:
    """GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}"""
    return await reading.get_event(requester, path_value(room_id), path_value(event_id))


@get("/_matrix/client/v3/rooms/{room_id:str}/members")
async def get_members_by_room(
    reading: NamedDependency[RoomReading],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    at: FromQuery[str | None] = None,
    # Not named `membership`: Litestar would inject the service of that name instead.
    membership_: Annotated[
        Literal["join", "invite", "knock", "leave", "ban"] | None, Parameter(query="membership")
    ] = None,
    not_membership: FromQuery[Literal["join", "invite", "knock", "leave", "ban"] | None] = None,
) -> dict[str, list[msgspec.Raw]]:
    """GET /_matrix/client/v3/rooms/{roomId}/members"""
    chunk = await reading.members(requester, path_value(room_id), at, membership_, not_membership)
    return {"chunk": chunk}


@get("/_matrix/client/v3/rooms/{room_id:str}/joined_members")
async def get_joined_members_by_room(
    reading: NamedDependency[RoomReading],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
) -> dict[str, Any]:
    """GET /_matrix/client/v3/rooms/{roomId}/joined_members"""
    return await reading.joined_members(requester, path_value(room_id))


@get("/_matrix/client/v3/rooms/{room_id:str}/messages")
async def get_room_events(
    reading: NamedDependency[RoomReading],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    dir: FromQuery[Literal["b", "f"]] = "b",
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: FromQuery[str | None] = None,
    limit: FromQuery[int] = 10,
    filter: FromQuery[str | None] = None,
) -> MessagesResponse:
    """GET /_matrix/client/v3/rooms/{roomId}/messages"""
    if limit < 0:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "limit must not be negative")
    event_filter = parse_room_event_filter(filter)
    if event_filter.limit is not None:
        limit = min(limit, event_filter.limit)
    page = await reading.messages(
        requester,
        path_value(room_id),
        from_token=from_,
        to_token=to,
        backwards=dir == "b",
        limit=limit,
        event_filter=event_filter,
    )
    return MessagesResponse(page.chunk, page.start, page.end, page.state or None)


@get("/_matrix/client/v3/rooms/{room_id:str}/context/{event_id:str}")
async def get_event_context(
    reading: NamedDependency[RoomReading],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_id: FromPath[str],
    limit: FromQuery[int] = 10,
    filter: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}"""
    if limit < 0:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "limit must not be negative")
    event_filter = parse_room_event_filter(filter)
    return await reading.context(
        requester, path_value(room_id), path_value(event_id), limit, event_filter
    )


@put("/_matrix/client/v3/rooms/{room_id:str}/redact/{event_id:str}/{txn_id:str}")
async def redact_event(
    sending: NamedDependency[Sending],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    event_id: FromPath[str],
    txn_id: FromPath[str],
    data: Any = None,
) -> dict[str, str]:
    """PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"""
    body = parse_body(data, RedactBody, default=RedactBody())
    redaction_id = await sending.redact(
        requester, path_value(room_id), path_value(event_id), path_value(txn_id), body.reason
    )
    return {"event_id": redaction_id}


def _state_key(raw: Any) -> str:
    # Litestar's path type keeps the leading '/'.
    value = path_value(str(raw))
    return value[1:] if value.startswith("/") else value


def _state_answer(row: Any, form: str) -> msgspec.Raw:
    if form == "event":
        return client_format.serve(row)
    content = msgspec.json.decode(row.client).get("content", {})
    return msgspec.Raw(msgspec.json.encode(content))
