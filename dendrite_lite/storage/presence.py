"""Presence: https://spec.matrix.org/latest/client-server-api/#presence"""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class PresenceRow:
    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int
    currently_active: bool


_COLUMNS = "user_id, state, status_msg, last_active_ts, currently_active"


def _row(row: tuple[object, ...]) -> PresenceRow:
    return PresenceRow(
        str(row[0]),
        str(row[1]),
        None if row[2] is None else str(row[2]),
        int(row[3]),  # type: ignore[call-overload]
        bool(row[4]),
    )


def get(conn: apsw.Connection, user_id: str) -> PresenceRow | None:
    for row in conn.execute(f"SELECT {_COLUMNS} FROM presence WHERE user_id = ?", (user_id,)):
        return _row(row)
    return None


def upsert(conn: apsw.Connection, row: PresenceRow, position: int) -> None:
    conn.execute(
        "INSERT INTO presence (user_id, state, status_msg, last_active_ts, currently_active,"
        " stream_pos) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " state = excluded.state, status_msg = excluded.status_msg,"
        " last_active_ts = excluded.last_active_ts,"
        " currently_active = excluded.currently_active, stream_pos = excluded.stream_pos",
        (
            row.user_id,
            row.state,
            row.status_msg,
            row.last_active_ts,
            int(row.currently_active),
            position,
        ),
    )


def any_changed(conn: apsw.Connection, after: int, upto: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM presence WHERE stream_pos > ? AND stream_pos <= ? LIMIT 1",
            (after, upto),
        ).fetchone()
        is not None
    )


def changed_for(conn: apsw.Connection, user_id: str, after: int, upto: int) -> list[PresenceRow]:
    """Presence changes of the user and everyone sharing a joined room with them."""
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM presence WHERE stream_pos > ? AND stream_pos <= ?"
            " AND (user_id = ? OR user_id IN (SELECT b.user_id FROM user_rooms AS a"
            " JOIN user_rooms AS b ON a.room_id = b.room_id WHERE a.user_id = ?"
            " AND a.membership = 'join' AND b.membership = 'join'))",
            (after, upto, user_id, user_id),
        )
    ]


def sharing_users(conn: apsw.Connection, user_id: str) -> list[str]:
    """Users in any joined room with `user_id` (who see their presence), and themselves."""
    return [
        str(u)
        for (u,) in conn.execute(
            "SELECT DISTINCT b.user_id FROM user_rooms AS a JOIN user_rooms AS b"
            " ON a.room_id = b.room_id WHERE a.user_id = ? AND a.membership = 'join'"
            " AND b.membership = 'join' UNION SELECT ?",
            (user_id, user_id),
        )
    ]


def stale_online(conn: apsw.Connection, cutoff_ts: int) -> list[PresenceRow]:
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM presence WHERE state != 'offline' AND last_active_ts < ?",
            (cutoff_ts,),
        )
    ]
