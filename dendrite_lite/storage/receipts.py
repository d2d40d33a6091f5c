"""Read receipts: https://spec.matrix.org/latest/client-server-api/#receipts"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import apsw
import msgspec

_SELECT = "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts"


@dataclass(frozen=True)
class ReceiptRow:
    room_id: str
    user_id: str
    receipt_type: str
    thread_id: str
    event_id: str
    ts: int


def upsert(
    conn: apsw.Connection,
    room_id: str,
    user_id: str,
    receipt_type: str,
    thread_id: str,
    event_id: str,
    ts: int,
    position: int,
) -> None:
    conn.execute(
        "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room_id, user_id, receipt_type, thread_id)"
        " DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts,"
        " stream_pos = excluded.stream_pos",
        (room_id, user_id, receipt_type, thread_id, event_id, ts, position),
    )


def changed_in_rooms(
    conn: apsw.Connection, room_ids: Iterable[str], after: int, upto: int
) -> list[ReceiptRow]:
    wanted = list(room_ids)
    if not wanted:
        return []
    return _rows(
        conn,
        f"{_SELECT} WHERE room_id IN (SELECT value FROM json_each(?)) AND stream_pos > ?"
        " AND stream_pos <= ?",
        (msgspec.json.encode(wanted), after, upto),
    )


def changed_since_each(
    conn: apsw.Connection, after: Mapping[str, int], upto: int
) -> list[ReceiptRow]:
    """The receipts of each room (a key of `after`) set after that room's position, up
    to `upto`: one statement, an index range per room."""
    if not after:
        return []
    return _rows(
        conn,
        "SELECT r.room_id, r.user_id, r.receipt_type, r.thread_id, r.event_id, r.ts"
        " FROM json_each(?1) AS j JOIN receipts AS r ON r.room_id = j.key"
        " AND r.stream_pos > j.value AND r.stream_pos <= ?2",
        (msgspec.json.encode(after), upto),
    )


def on_events_or_by(
    conn: apsw.Connection,
    room_ids: Iterable[str],
    event_ids: Iterable[str],
    user_id: str,
    upto: int,
) -> list[ReceiptRow]:
    """The receipts in these rooms up to `upto` that point at one of these events, or
    that are `user_id`'s own: what a room sent whole by sliding sync carries (MSC3960).
    One walk of each room's receipts (its range of the (room_id, stream_pos) index), as
    reading them all would be."""
    rooms = msgspec.json.encode(list(room_ids))
    if rooms == b"[]":
        return []
    return _rows(
        conn,
        f"{_SELECT} WHERE room_id IN (SELECT value FROM json_each(?1)) AND stream_pos <= ?2"
        " AND (user_id = ?3 OR event_id IN (SELECT value FROM json_each(?4)))",
        (rooms, upto, user_id, msgspec.json.encode(list(event_ids))),
    )


def _rows(conn: apsw.Connection, sql: str, params: tuple[object, ...]) -> list[ReceiptRow]:
    """The rows of a SELECT of the six ReceiptRow columns, in that order."""
    return [ReceiptRow(*row) for row in conn.execute(sql, params)]


def rooms_read_by(conn: apsw.Connection, user_id: str, after: int, upto: int) -> frozenset[str]:
    """The rooms where the user's own read receipts (public or private) moved after
    `after`, up to `upto`: their unread counts may have fallen with no new event."""
    return frozenset(
        str(room_id)
        for (room_id,) in conn.execute(
            "SELECT DISTINCT room_id FROM receipts WHERE stream_pos > ? AND stream_pos <= ?"
            " AND user_id = ? AND receipt_type IN ('m.read', 'm.read.private')",
            (after, upto, user_id),
        )
    )


def stream_pos_of_event(conn: apsw.Connection, room_id: str, event_id: str) -> int | None:
    for (position,) in conn.execute(
        "SELECT stream_pos FROM events WHERE event_id = ? AND room_id = ?", (event_id, room_id)
    ):
        return int(position)
    return None
