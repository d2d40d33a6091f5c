"""Typing, receipts, read markers and send-to-device: the ephemeral side of rooms.

https://spec.matrix.org/latest/client-server-api/#typing-notifications
https://spec.matrix.org/latest/client-server-api/#receipts
https://spec.matrix.org/latest/client-server-api/#fully-read-markers
https://spec.matrix.org/latest/client-server-api/#send-to-device-messaging
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import post, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError, forbidden
from dendrite_lite.rooms.receipts import FULLY_READ, READ, READ_PRIVATE, Receipts
from dendrite_lite.rooms.typing_notifications import TypingNotifications
from dendrite_lite.storage import rooms
from dendrite_lite.storage.db import Database
from dendrite_lite.to_device import ToDevice


class TypingBody(msgspec.Struct, kw_only=True):
    typing: bool
    timeout: int = 30_000


class ReceiptBody(msgspec.Struct, kw_only=True):
    thread_id: str | None = None


class ReadMarkersBody(msgspec.Struct, kw_only=True):
    fully_read: str | None = msgspec.field(default=None, name="m.fully_read")
    read: str | None = msgspec.field(default=None, name="m.read")
    read_private: str | None = msgspec.field(default=None, name="m.read.private")


class SendToDeviceBody(msgspec.Struct, kw_only=True):
    messages: dict[str, Any]


@put("/_matrix/client/v3/rooms/{room_id:str}/typing/{user_id:str}")
async def set_typing(
    typing_notifications: NamedDependency[TypingNotifications],
    db: NamedDependency[Database],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    user_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"""
    body = parse_body(data, TypingBody)
    room, user = path_value(room_id), path_value(user_id)
    if user != requester.user_id:
        raise forbidden("Cannot set typing for another user")
    if body.timeout < 0:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "timeout must not be negative")
    membership = await db.read(lambda conn: rooms.membership_of(conn, user, room))
    if membership is None or membership[0] != "join":
        raise forbidden(f"{user} is not in room {room}")
    typing_notifications.set_typing(room, user, body.typing, body.timeout)
    return {}


@post(
    "/_matrix/client/v3/rooms/{room_id:str}/receipt/{receipt_type:str}/{event_id:str}",
    status_code=200,
)
async def post_receipt(
    receipts: NamedDependency[Receipts],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    receipt_type: FromPath[str],
    event_id: FromPath[str],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"""
    body = parse_body(data, ReceiptBody, default=ReceiptBody())
    await receipts.send_receipt(
        requester, path_value(room_id), receipt_type, path_value(event_id), body.thread_id
    )
    return {}


@post("/_matrix/client/v3/rooms/{room_id:str}/read_markers", status_code=200)
async def set_read_marker(
    receipts: NamedDependency[Receipts],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/rooms/{roomId}/read_markers"""
    body = parse_body(data, ReadMarkersBody)
    markers = {
        kind: event_id
        for kind, event_id in (
            (FULLY_READ, body.fully_read),
            (READ, body.read),
            (READ_PRIVATE, body.read_private),
        )
        if event_id is not None
    }
    if markers:
        await receipts.set_markers(requester, path_value(room_id), markers)
    return {}


@put("/_matrix/client/v3/sendToDevice/{event_type:str}/{txn_id:str}")
async def send_to_device(
    to_device: NamedDependency[ToDevice],
    requester: NamedDependency[Requester],
    event_type: FromPath[str],
    txn_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"""
    body = parse_body(data, SendToDeviceBody)
    await to_device.send(requester, path_value(event_type), path_value(txn_id), body.messages)
    return {}
