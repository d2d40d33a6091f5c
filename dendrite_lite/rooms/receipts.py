"""Receipts and read markers.

https://spec.matrix.org/latest/client-server-api/#receipts
https://spec.matrix.org/latest/client-server-api/#fully-read-markers
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, not_found
from dendrite_lite.notifier import Notifier
from dendrite_lite.push.counts import mark_read
from dendrite_lite.push.hook import THREAD, THREAD_HOPS, PushHook
from dendrite_lite.storage import account_data, receipts, relations, room_state, rooms, streams
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.notifications import MAIN
from dendrite_lite.storage.receipts import ReceiptRow

READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = frozenset({READ, READ_PRIVATE, FULLY_READ})


class Receipts:
    def __init__(self, db: Database, notifier: Notifier, push_hook: PushHook | None = None) -> None:
        self.db = db
        self.notifier = notifier
        self.push_hook = push_hook

    def _wake(self, stored: tuple[int, list[str], bool]) -> None:
        """on_commit: the long-polls the receipt concerns read it while the commit is
        flushed (storage/db.py holds their answers until it is)."""
        position, notify, _ = stored
        self.notifier.notify(notify, position)

    async def send_receipt(
        self,
        requester: Requester,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None,
    ) -> None:
        """POST /rooms/{roomId}/receipt/{receiptType}/{eventId}"""
        if receipt_type not in RECEIPT_TYPES:
            raise MatrixError(400, ErrCode.INVALID_PARAM, f"Unknown receipt type {receipt_type}")
        if thread_id is not None and receipt_type == FULLY_READ:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "m.fully_read cannot have a thread_id")
        if thread_id is not None and thread_id != "main" and not thread_id.startswith("$"):
            raise MatrixError(400, ErrCode.INVALID_PARAM, "thread_id must be 'main' or an event ID")
        await self.set_markers(requester, room_id, {receipt_type: event_id}, thread_id or "")

    async def set_markers(
        self, requester: Requester, room_id: str, markers: dict[str, str], thread_id: str = ""
    ) -> None:
        """Receipts and the fully-read marker, in one write (POST /read_markers too)."""
        user_id = requester.user_id

        def store(conn: apsw.Connection) -> tuple[int, list[str], bool]:
            membership = rooms.membership_of(conn, user_id, room_id)
            if membership is None or membership[0] != "join":
                raise forbidden(f"{user_id} is not in room {room_id}")
            positions: dict[str, int] = {}
            for receipt_type, event_id in markers.items():
                found = receipts.stream_pos_of_event(conn, room_id, event_id)
                if found is None:
                    raise not_found(f"Event {event_id} not found in room")
                positions[event_id] = found
                if thread_id and receipt_type != FULLY_READ:
                    _check_in_thread(conn, room_id, event_id, thread_id)
            position = streams.next_position(conn)
            now = now_ms()
            public = read = False
            for receipt_type, event_id in markers.items():
                if receipt_type == FULLY_READ:
                    content = msgspec.json.encode({"event_id": event_id})
                    account_data.upsert(conn, user_id, room_id, FULLY_READ, content, position)
                else:
                    receipts.upsert(
                        conn, room_id, user_id, receipt_type, thread_id, event_id, now, position
                    )
                    # The user's own receipt clears their notifications up to the event.
                    if mark_read(conn, user_id, room_id, thread_id, positions[event_id]):
                        read = True
                    public = public or receipt_type == READ
            notify: list[str] = [user_id]
            if public:
                notify = room_state.members(conn, room_id)
            return position, notify, read

        _, _, read = await self.db.write(store, on_commit=self._wake)
        if read and self.push_hook is not None:
            self.push_hook.read_by(user_id)


def _check_in_thread(conn: apsw.Connection, room_id: str, event_id: str, thread_id: str) -> None:
    """A threaded receipt must be on an event of that thread (the root counts as in
    its own thread too); spec: 400 M_INVALID_PARAM when "the event_id is not related
    to the thread_id"."""
    actual = thread_of_event(conn, room_id, event_id)
    if thread_id == actual or (thread_id != MAIN and thread_id == event_id):
        return
    raise MatrixError(400, ErrCode.INVALID_PARAM, f"Event {event_id} is not in thread {thread_id}")


def thread_of_event(conn: apsw.Connection, room_id: str, event_id: str) -> str:
    """The thread of a stored event: its root's ID or 'main' (spec: an event is in a
    thread if it or a parent, at most THREAD_HOPS relations up, is an m.thread reply)."""
    target: str | None = event_id
    for _ in range(THREAD_HOPS + 1):
        if target is None:
            break
        parent = relations.parent_of(conn, room_id, target)
        if parent is None:
            break
        if parent[1] == THREAD:
            return parent[0]
        target = parent[0]
    return MAIN


def receipt_event(rows: list[ReceiptRow], viewer: str) -> dict[str, Any] | None:
    """The m.receipt ephemeral event for a room, as `viewer` may see it."""
    content: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        if row.receipt_type == READ_PRIVATE and row.user_id != viewer:
            continue
        data: dict[str, Any] = {"ts": row.ts}
        if row.thread_id:
            data["thread_id"] = row.thread_id
        content.setdefault(row.event_id, {}).setdefault(row.receipt_type, {})[row.user_id] = data
    if not content:
        return None
    return {"type": "m.receipt", "content": content}
