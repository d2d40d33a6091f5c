"""Send-to-device messaging: https://spec.matrix.org/latest/client-server-api/#send-to-device-messaging"""

from __future__ import annotations

import logging
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import devices, streams, to_device
from dendrite_lite.storage.db import Database

log = logging.getLogger(__name__)

MAX_MESSAGES_PER_REQUEST = 10_000
MAX_CONTENT_BYTES = 64 * 1024


class ToDevice:
    def __init__(self, db: Database, notifier: Notifier, server_name: str) -> None:
        self.db = db
        self.notifier = notifier
        self.server_name = server_name

    async def send(self, requester: Requester, event_type: str, txn_id: str, messages: Any) -> None:
        """PUT /sendToDevice/{eventType}/{txnId}: idempotent per device and txn ID.

        Messages for devices that do not exist are dropped (nobody could collect them);
        `*` is every device the user has when the message is sent.
        """
        if not event_type or len(event_type.encode()) > 255:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid event type")
        if not isinstance(messages, dict):
            raise MatrixError(400, ErrCode.BAD_JSON, "messages must be an object")
        for by_device in messages.values():
            if not isinstance(by_device, dict):
                raise MatrixError(400, ErrCode.BAD_JSON, "messages must map users to devices")
        # Counted before anything is encoded: a flood is refused cheaply.
        if sum(len(by_device) for by_device in messages.values()) > MAX_MESSAGES_PER_REQUEST:
            raise MatrixError(413, ErrCode.TOO_LARGE, "Too many to-device messages at once")
        local: dict[str, list[tuple[str, bytes]]] = {}  # user -> [(device or '*', content)]
        for user_id, by_device in messages.items():
            if not _is_user_id(user_id):
                raise MatrixError(400, ErrCode.INVALID_PARAM, f"Invalid user ID {user_id!r}")
            for device_id, content in by_device.items():
                if not isinstance(content, dict):
                    raise MatrixError(400, ErrCode.BAD_JSON, "Message content must be an object")
                encoded = msgspec.json.encode(content)
                if len(encoded) > MAX_CONTENT_BYTES:
                    raise MatrixError(413, ErrCode.TOO_LARGE, "To-device message too large")
                if not user_id.endswith(":" + self.server_name):
                    # Remote delivery needs federation; it is not built yet.
                    log.info("dropping to-device message for remote user %s", user_id)
                    continue
                local.setdefault(user_id, []).append((device_id, encoded))
        sender = requester.user_id

        def deliver(conn: apsw.Connection) -> tuple[int, list[str]]:
            if to_device.txn_seen(conn, sender, requester.device_id, txn_id):
                return 0, []
            to_device.record_txn(conn, sender, requester.device_id, txn_id, now_ms())
            rows: list[tuple[str, str, str, str, bytes]] = []
            for user_id, wanted in local.items():
                existing = [d.device_id for d in devices.list_for_user(conn, user_id)]
                for device_id, content in wanted:
                    targets = existing if device_id == "*" else [device_id]
                    rows.extend(
                        (user_id, target, sender, event_type, content)
                        for target in targets
                        if target in existing
                    )
            if not rows:
                return 0, []
            position = streams.next_position(conn)
            to_device.insert_many(conn, position, rows)
            return position, sorted({row[0] for row in rows})

        await self.db.write(deliver, on_commit=self._wake)

    def _wake(self, delivered: tuple[int, list[str]]) -> None:
        """on_commit: the recipients' long-polls read the messages while the commit is
        flushed (storage/db.py holds their answers until it is)."""
        position, users = delivered
        if users:
            self.notifier.notify(users, position)


def _is_user_id(user_id: str) -> bool:
    localpart, sep, server = user_id[1:].partition(":")
    return user_id.startswith("@") and bool(sep) and bool(localpart) and bool(server)
