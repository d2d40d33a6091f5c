"""Notifications, unread counts and read marks (push_notifications, push_counts,
push_read_marks in schema.sql).

The send path writes a row per recipient. Both tables are keyed so that one event's rows
are neighbours (by position, by room): per-user keys would touch a page per recipient.
Per-user reads scan by position instead, bounded where a scan could be long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import apsw
import msgspec

from dendrite_lite.storage.events import _COLUMNS as EVENT_COLUMNS
from dendrite_lite.storage.events import EventRow
from dendrite_lite.storage.events import _row as event_row

UNTHREADED = ""
MAIN = "main"
# /notifications looks at most this many notifications (of everyone) per page.
PAGE_SCAN = 20_000
# A big room's notifications are stored this many recipients at a time (record's pause).
RECORD_CHUNK = 128

_JOINED_COLUMNS = (
    "n.stream_pos, n.room_id, n.thread_id, n.highlight, n.actions, n.ts, "
    + ", ".join(f"e.{column.strip()}" for column in EVENT_COLUMNS.split(","))
)


class Notified(NamedTuple):
    """The event's notification for one recipient (a tuple: a big room's send makes one
    per member)."""

    user_id: str
    highlight: bool
    actions: bytes  # JSON
    counted: bool  # raises the room's unread counts (the user is joined)


# One statement stores the notifications of every recipient of a chunk who shares one
# answer (their user IDs as a JSON array): in a big room nearly everyone gets the default
# rules' answer, and a statement per recipient (executemany) cost ~6 us each, 3 ms for a
# room of 500, where SQLite looping over the array itself takes ~1 ms (bench/RESULTS.md,
# seventeenth session). `WHERE true` keeps the upsert's ON from being read as a join's.
_RECORD_SQL = (
    "INSERT OR IGNORE INTO push_notifications"
    " (stream_pos, user_id, room_id, event_nid, thread_id, highlight, actions, ts)"
    " SELECT ?1, value, ?2, ?3, ?4, ?5, ?6, ?7 FROM json_each(?8)"
)
_COUNT_SQL = (
    "INSERT INTO push_counts (room_id, user_id, thread_id, notifications, highlights,"
    " last_pos) SELECT ?1, value, ?2, 1, ?3, ?4 FROM json_each(?5) WHERE true"
    " ON CONFLICT (room_id, user_id, thread_id) DO UPDATE SET"
    " notifications = notifications + 1, highlights = highlights + excluded.highlights,"
    " last_pos = excluded.last_pos"
)


def record(
    conn: apsw.Connection,
    stream_pos: int,
    room_id: str,
    event_nid: int,
    thread_id: str,
    ts: int,
    recipients: Sequence[Notified],
    *,
    pause: Callable[[], None] | None = None,
) -> None:
    """Store one event's notifications and raise the counts of the counted ones (two
    statements per RECORD_CHUNK recipients and answer; `pause` is called between chunks:
    the writer may stop the unit there, Database.give_way)."""
    for start in range(0, len(recipients), RECORD_CHUNK):
        if start and pause is not None:
            pause()
        sharing: dict[tuple[bool, bytes, bool], list[str]] = {}
        for n in recipients[start : start + RECORD_CHUNK]:
            sharing.setdefault((n.highlight, n.actions, n.counted), []).append(n.user_id)
        for (highlight, actions, counted), user_ids in sharing.items():
            users = msgspec.json.encode(user_ids)
            conn.execute(
                _RECORD_SQL,
                (stream_pos, room_id, event_nid, thread_id, highlight, actions, ts, users),
            )
            if counted:
                conn.execute(_COUNT_SQL, (room_id, thread_id, highlight, stream_pos, users))


def clear_counts(conn: apsw.Connection, user_id: str, room_id: str) -> None:
    """The user left the room: its counts go."""
    conn.execute("DELETE FROM push_counts WHERE room_id = ? AND user_id = ?", (room_id, user_id))


def advance_read_mark(
    conn: apsw.Connection, user_id: str, room_id: str, thread_id: str, stream_pos: int
) -> bool:
    """Move the mark forward to `stream_pos`; False when it already was there or beyond."""
    conn.execute(
        "INSERT INTO push_read_marks (user_id, room_id, thread_id, stream_pos)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET"
        " stream_pos = excluded.stream_pos WHERE excluded.stream_pos > stream_pos",
        (user_id, room_id, thread_id, stream_pos),
    )
    return conn.changes() > 0


def read_through(
    conn: apsw.Connection, user_id: str, room_id: str, thread_id: str, stream_pos: int
) -> bool:
    """The common case of a receipt: it covers every counted notification (of the
    thread, or of all threads for an unthreaded receipt), so the counts are zero without
    looking at a notification. False when some are newer (recount)."""
    rows = [
        (str(thread), int(last))
        for thread, last in conn.execute(
            "SELECT thread_id, last_pos FROM push_counts WHERE room_id = ? AND user_id = ?"
            " AND notifications > 0",
            (room_id, user_id),
        )
    ]
    covered = [t for t, last in rows if thread_id in (UNTHREADED, t)]
    if any(last > stream_pos for t, last in rows if t in covered):
        return False
    conn.executemany(
        "UPDATE push_counts SET notifications = 0, highlights = 0"
        " WHERE room_id = ? AND user_id = ? AND thread_id = ?",
        [(room_id, user_id, thread) for thread in covered],
    )
    return True


def recount(conn: apsw.Connection, user_id: str, room_id: str) -> None:
    """Recompute the user's counts in a room from the notifications after their read
    marks: a notification is read when the unthreaded mark or its thread's mark is at or
    past it. Walks the room's events after the unthreaded mark and probes the user's
    notification of each (push_notifications is keyed by position and user)."""
    marks: dict[str, int] = {
        str(thread): int(position)
        for thread, position in conn.execute(
            "SELECT thread_id, stream_pos FROM push_read_marks WHERE user_id = ? AND room_id = ?",
            (user_id, room_id),
        )
    }
    base = marks.get(UNTHREADED, 0)
    counts: dict[str, list[int]] = {}
    for thread_id, stream_pos, highlight in conn.execute(
        "SELECT n.thread_id, n.stream_pos, n.highlight FROM events AS e"
        " JOIN push_notifications AS n ON n.stream_pos = e.stream_pos AND n.user_id = ?3"
        " WHERE e.room_id = ?1 AND e.stream_pos > ?2",
        (room_id, base, user_id),
    ):
        if stream_pos <= marks.get(str(thread_id), 0):
            continue
        entry = counts.setdefault(str(thread_id), [0, 0])
        entry[0] += 1
        entry[1] += int(highlight)
    conn.execute(
        "UPDATE push_counts SET notifications = 0, highlights = 0"
        " WHERE room_id = ? AND user_id = ?",
        (room_id, user_id),
    )
    conn.executemany(
        "UPDATE push_counts SET notifications = ?, highlights = ?"
        " WHERE room_id = ? AND user_id = ? AND thread_id = ?",
        [(n, h, room_id, user_id, thread) for thread, (n, h) in counts.items()],
    )


ThreadCounts = dict[
    str, tuple[int, int]
]  # thread ('main' or a root) -> (notifications, highlights)


def unread_by_thread(
    conn: apsw.Connection, user_id: str, room_ids: Iterable[str] | None = None
) -> dict[str, ThreadCounts]:
    """room_id -> thread -> counts, of the threads with anything unread; every room of the
    user, or just `room_ids` (an incremental sync serves few)."""
    if room_ids is None:
        rows = conn.execute(
            "SELECT room_id, thread_id, notifications, highlights FROM push_counts"
            " WHERE user_id = ? AND (notifications > 0 OR highlights > 0)",
            (user_id,),
        )
    else:
        rows = conn.execute(
            "SELECT room_id, thread_id, notifications, highlights FROM push_counts"
            " WHERE user_id = ? AND room_id IN (SELECT value FROM json_each(?))"
            " AND (notifications > 0 OR highlights > 0)",
            (user_id, msgspec.json.encode(sorted(set(room_ids)))),
        )
    found: dict[str, ThreadCounts] = {}
    for room_id, thread_id, count, highlights in rows:
        found.setdefault(str(room_id), {})[str(thread_id)] = (int(count), int(highlights))
    return found


def unread_by_room(conn: apsw.Connection, user_id: str) -> dict[str, tuple[int, int]]:
    """room_id -> (notification_count, highlight_count), over all the room's threads."""
    return {
        room_id: (sum(n for n, _ in threads.values()), sum(h for _, h in threads.values()))
        for room_id, threads in unread_by_thread(conn, user_id).items()
    }


def total_unread(conn: apsw.Connection, user_id: str) -> int:
    for (total,) in conn.execute(
        "SELECT coalesce(sum(notifications), 0) FROM push_counts WHERE user_id = ?", (user_id,)
    ):
        return int(total)
    return 0


@dataclass(frozen=True)
class NotificationRow:
    stream_pos: int
    room_id: str
    thread_id: str
    highlight: bool
    actions: bytes
    ts: int
    event: EventRow


def _rows(cursor: Iterable[Sequence[object]]) -> list[NotificationRow]:
    return [
        NotificationRow(
            int(row[0]),  # type: ignore[call-overload]
            str(row[1]),
            str(row[2]),
            bool(row[3]),
            bytes(row[4]),  # type: ignore[call-overload]
            int(row[5]),  # type: ignore[call-overload]
            event_row(row[6:]),
        )
        for row in cursor
    ]


def page(
    conn: apsw.Connection, user_id: str, before: int | None, limit: int, only_highlight: bool
) -> tuple[list[NotificationRow], int | None]:
    """Up to `limit` of the user's notifications before `before` (None: the newest),
    newest first, and where to continue if the page stopped short of the end.

    Highlights have a per-user index. Everything else is found by scanning back through
    everyone's notifications, PAGE_SCAN at a time: a page may hold fewer than `limit`
    (even none) and still say where to go on.
    """
    upper = before if before is not None else 1 << 62
    if only_highlight:
        rows = _rows(
            conn.execute(
                f"SELECT {_JOINED_COLUMNS} FROM push_notifications AS n"
                " JOIN events AS e ON e.event_nid = n.event_nid"
                " WHERE n.user_id = ? AND n.highlight = 1 AND n.stream_pos < ?"
                " ORDER BY n.stream_pos DESC LIMIT ?",
                (user_id, upper, limit + 1),
            )
        )
        more = len(rows) > limit
        return rows[:limit], rows[limit - 1].stream_pos if more else None
    floor_row = conn.execute(
        "SELECT stream_pos FROM push_notifications WHERE stream_pos < ?"
        " ORDER BY stream_pos DESC LIMIT 1 OFFSET ?",
        (upper, PAGE_SCAN),
    ).fetchone()
    floor = int(floor_row[0]) if floor_row is not None else 0
    rows = _rows(
        conn.execute(
            f"SELECT {_JOINED_COLUMNS} FROM push_notifications AS n"
            " JOIN events AS e ON e.event_nid = n.event_nid"
            " WHERE n.stream_pos < ? AND n.stream_pos >= ? AND n.user_id = ?"
            " ORDER BY n.stream_pos DESC LIMIT ?",
            (upper, floor, user_id, limit + 1),
        )
    )
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].stream_pos
    # The scan window ended before the page filled: carry on below it, if anything is.
    return rows, floor if floor_row is not None else None


def read_marks(
    conn: apsw.Connection, user_id: str, room_ids: Iterable[str]
) -> dict[tuple[str, str], int]:
    """(room_id, thread_id) -> the user's read mark there."""
    return {
        (str(room_id), str(thread_id)): int(position)
        for room_id, thread_id, position in conn.execute(
            "SELECT room_id, thread_id, stream_pos FROM push_read_marks WHERE user_id = ?"
            " AND room_id IN (SELECT value FROM json_each(?))",
            (user_id, msgspec.json.encode(sorted(set(room_ids)))),
        )
    }


def pending(conn: apsw.Connection, user_id: str, after: int, limit: int) -> list[NotificationRow]:
    """The user's notifications after `after`, oldest first (what a pusher sends next).
    Pushers keep up, so the scan from `after` is short."""
    return _rows(
        conn.execute(
            f"SELECT {_JOINED_COLUMNS} FROM push_notifications AS n"
            " JOIN events AS e ON e.event_nid = n.event_nid"
            " WHERE n.stream_pos > ? AND n.user_id = ? ORDER BY n.stream_pos LIMIT ?",
            (after, user_id, limit),
        )
    )


def prune(conn: apsw.Connection, older_than_ts: int, limit: int) -> int:
    """Delete up to `limit` of the oldest notifications if older than `older_than_ts`;
    how many went (positions and times grow together, so the oldest go first)."""
    conn.execute(
        "DELETE FROM push_notifications WHERE (stream_pos, user_id) IN"
        " (SELECT stream_pos, user_id FROM push_notifications ORDER BY stream_pos LIMIT ?)"
        " AND ts < ?",
        (limit, older_than_ts),
    )
    return conn.changes()
