"""Jumping to a date: https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidtimestamp_to_event

The closest event at or after (`f`) / at or before (`b`) a timestamp, walking the
(room_id, origin_server_ts) index and skipping what history visibility hides from the
caller; a caller who cannot see the room at all gets 403, as for /messages.
"""

from __future__ import annotations

from typing import Any

import apsw

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import forbidden, not_found
from dendrite_lite.rooms.directory import current_content
from dendrite_lite.rooms.visibility import VisibilityChecker, viewer
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.events import EventRow
from dendrite_lite.storage.events import get_many as events_by_id

BATCH = 50
# How many events one lookup may pass over that the caller may not see.
MAX_SCAN = 1000


class TimestampLookup:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def closest_event(
        self, requester: Requester, room_id: str, ts: int, forwards: bool
    ) -> dict[str, Any]:
        def read(conn: apsw.Connection) -> dict[str, Any]:
            who = viewer(conn, requester.user_id, room_id)
            if who.membership is None:
                history = current_content(conn, room_id, "m.room.history_visibility") or {}
                if history.get("history_visibility") != "world_readable":
                    raise forbidden(f"{requester.user_id} is not in room {room_id}")
            checker = VisibilityChecker(conn, who)
            # Keyset over (origin_server_ts, stream_pos): ties keep stream order.
            cursor: tuple[int, int] | None = None
            scanned = 0
            while scanned < MAX_SCAN:
                batch = _batch(conn, room_id, ts, forwards, cursor)
                if not batch:
                    break
                for row in batch:
                    scanned += 1
                    if checker.can_see(row):
                        return {"event_id": row.event_id, "origin_server_ts": row.origin_server_ts}
                cursor = (batch[-1].origin_server_ts, batch[-1].stream_pos)
            direction = "forward" if forwards else "backward"
            raise not_found(f"Unable to find an event from {ts} in the {direction} direction")

        return await self.db.read(read)


def _batch(
    conn: apsw.Connection,
    room_id: str,
    ts: int,
    forwards: bool,
    cursor: tuple[int, int] | None,
) -> list[EventRow]:
    if forwards:
        bound, order = "origin_server_ts >= ?", "ASC"
        after = "(origin_server_ts > ? OR (origin_server_ts = ? AND stream_pos > ?))"
    else:
        bound, order = "origin_server_ts <= ?", "DESC"
        after = "(origin_server_ts < ? OR (origin_server_ts = ? AND stream_pos < ?))"
    clauses = ["room_id = ?", bound]
    params: list[object] = [room_id, ts]
    if cursor is not None:
        clauses.append(after)
        params += [cursor[0], cursor[0], cursor[1]]
    params.append(BATCH)
    ids = [
        str(event_id)
        for (event_id,) in conn.execute(
            f"SELECT event_id FROM events WHERE {' AND '.join(clauses)}"
            f" ORDER BY origin_server_ts {order}, stream_pos {order} LIMIT ?",
            params,
        )
    ]
    rows = events_by_id(conn, ids)
    return [rows[event_id] for event_id in ids if event_id in rows]
