"""Filters uploaded by clients: https://spec.matrix.org/latest/client-server-api/#filtering"""

from __future__ import annotations

import apsw


def insert(conn: apsw.Connection, user_id: str, filter_json: bytes) -> int:
    """Store a filter, or find the identical one already stored; returns its ID."""
    for (existing,) in conn.execute(
        "SELECT filter_id FROM user_filters WHERE user_id = ? AND filter = ?",
        (user_id, filter_json),
    ):
        return int(existing)
    row = conn.execute(
        "SELECT coalesce(max(filter_id), -1) + 1 FROM user_filters WHERE user_id = ?", (user_id,)
    ).fetchone()
    filter_id = int(row[0]) if row else 0
    conn.execute(
        "INSERT INTO user_filters (user_id, filter_id, filter) VALUES (?, ?, ?)",
        (user_id, filter_id, filter_json),
    )
    return filter_id


def get(conn: apsw.Connection, user_id: str, filter_id: int) -> bytes | None:
    for (value,) in conn.execute(
        "SELECT filter FROM user_filters WHERE user_id = ? AND filter_id = ?", (user_id, filter_id)
    ):
        return bytes(value)
    return None
