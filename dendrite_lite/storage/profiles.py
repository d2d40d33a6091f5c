"""Profile fields: displayname, avatar_url and custom fields, each as its JSON value."""

from __future__ import annotations

import apsw


def get_all(conn: apsw.Connection, user_id: str) -> dict[str, bytes]:
    return {
        str(field): bytes(value)
        for field, value in conn.execute(
            "SELECT field, value FROM profile_fields WHERE user_id = ?", (user_id,)
        )
    }


def get_field(conn: apsw.Connection, user_id: str, field: str) -> bytes | None:
    for (value,) in conn.execute(
        "SELECT value FROM profile_fields WHERE user_id = ? AND field = ?", (user_id, field)
    ):
        return bytes(value)
    return None


def set_field(conn: apsw.Connection, user_id: str, field: str, value: bytes | None) -> None:
    if value is None:
        conn.execute("DELETE FROM profile_fields WHERE user_id = ? AND field = ?", (user_id, field))
    else:
        conn.execute(
            "INSERT INTO profile_fields (user_id, field, value) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value",
            (user_id, field, value),
        )


def total_size(conn: apsw.Connection, user_id: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(length(field) + length(value)), 0) FROM profile_fields"
        " WHERE user_id = ?",
        (user_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def clear(conn: apsw.Connection, user_id: str) -> None:
    conn.execute("DELETE FROM profile_fields WHERE user_id = ?", (user_id,))
