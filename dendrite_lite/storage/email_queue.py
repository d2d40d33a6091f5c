"""Outgoing mail waiting to be sent: rows survive a restart and go once sent or given up."""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class QueuedEmail:
    id: int
    recipient: str
    subject: str
    text_body: str
    html_body: str
    sid: str | None
    created_ts: int
    attempts: int


def enqueue(
    conn: apsw.Connection,
    recipient: str,
    subject: str,
    text_body: str,
    html_body: str,
    sid: str | None,
    now: int,
) -> int:
    conn.execute(
        "INSERT INTO email_queue (recipient, subject, text_body, html_body, sid, created_ts,"
        " next_attempt_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (recipient, subject, text_body, html_body, sid, now, now),
    )
    return int(conn.last_insert_rowid())


def due(conn: apsw.Connection, now: int, limit: int) -> list[QueuedEmail]:
    return [
        QueuedEmail(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            str(r[4]),
            None if r[5] is None else str(r[5]),
            int(r[6]),
            int(r[7]),
        )
        for r in conn.execute(
            "SELECT id, recipient, subject, text_body, html_body, sid, created_ts, attempts"
            " FROM email_queue WHERE next_attempt_ts <= ? ORDER BY next_attempt_ts, id LIMIT ?",
            (now, limit),
        )
    ]


def next_due_ts(conn: apsw.Connection) -> int | None:
    row = conn.execute("SELECT min(next_attempt_ts) FROM email_queue").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def delete(conn: apsw.Connection, email_id: int) -> None:
    conn.execute("DELETE FROM email_queue WHERE id = ?", (email_id,))


def retry_later(conn: apsw.Connection, email_id: int, next_attempt_ts: int, error: str) -> None:
    conn.execute(
        "UPDATE email_queue SET attempts = attempts + 1, next_attempt_ts = ?, last_error = ?"
        " WHERE id = ?",
        (next_attempt_ts, error, email_id),
    )


def drop_for_session(conn: apsw.Connection, sid: str) -> None:
    """A new send_attempt supersedes a mail still queued for the same session."""
    conn.execute("DELETE FROM email_queue WHERE sid = ?", (sid,))
