"""User-interactive auth sessions."""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class UIASessionRow:
    session_id: str
    created_ts: int
    method: str
    uri: str
    user_id: str | None
    completed: bytes
    data: bytes


def get(conn: apsw.Connection, session_id: str) -> UIASessionRow | None:
    for row in conn.execute(
        "SELECT session_id, created_ts, method, uri, user_id, completed, data"
        " FROM uia_sessions WHERE session_id = ?",
        (session_id,),
    ):
        return UIASessionRow(
            row[0], row[1], row[2], row[3], row[4], row[5].encode(), row[6].encode()
        )
    return None


def insert(conn: apsw.Connection, session_id: str, created_ts: int, method: str, uri: str) -> None:
    conn.execute(
        "INSERT INTO uia_sessions (session_id, created_ts, method, uri) VALUES (?, ?, ?, ?)",
        (session_id, created_ts, method, uri),
    )


def update(
    conn: apsw.Connection, session_id: str, user_id: str | None, completed: bytes, data: bytes
) -> None:
    conn.execute(
        "UPDATE uia_sessions SET user_id = coalesce(?, user_id), completed = ?, data = ?"
        " WHERE session_id = ?",
        (user_id, completed.decode(), data.decode(), session_id),
    )


def delete(conn: apsw.Connection, session_id: str) -> None:
    conn.execute("DELETE FROM uia_sessions WHERE session_id = ?", (session_id,))


def delete_older_than(conn: apsw.Connection, cutoff_ts: int) -> int:
    conn.execute("DELETE FROM uia_sessions WHERE created_ts < ?", (cutoff_ts,))
    return conn.changes()
