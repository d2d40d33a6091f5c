"""Reports of events and rooms, kept for the server's admins.

https://spec.matrix.org/latest/client-server-api/#reporting-content
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class ReportRow:
    report_id: int
    room_id: str
    event_id: str | None  # None: the room itself was reported
    reporter: str
    reason: str | None
    score: int | None
    received_ts: int


def insert(
    conn: apsw.Connection,
    room_id: str,
    event_id: str | None,
    reporter: str,
    reason: str | None,
    score: int | None,
    now: int,
) -> int:
    conn.execute(
        "INSERT INTO reports (room_id, event_id, reporter, reason, score, received_ts)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (room_id, event_id, reporter, reason, score, now),
    )
    return conn.last_insert_rowid()


def recent(conn: apsw.Connection, limit: int, before: int | None = None) -> list[ReportRow]:
    """Newest first; `before` a report ID to page on from."""
    return [
        ReportRow(
            int(row[0]),
            str(row[1]),
            None if row[2] is None else str(row[2]),
            str(row[3]),
            None if row[4] is None else str(row[4]),
            None if row[5] is None else int(row[5]),
            int(row[6]),
        )
        for row in conn.execute(
            "SELECT report_id, room_id, event_id, reporter, reason, score, received_ts"
            " FROM reports WHERE report_id < ? ORDER BY report_id DESC LIMIT ?",
            (before if before is not None else 2**63 - 1, limit),
        )
    ]
