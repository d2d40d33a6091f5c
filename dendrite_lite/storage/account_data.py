"""Account data, global (room_id '') and per room."""

from __future__ import annotations

import apsw

from dendrite_lite.types import StreamPos

GLOBAL = ""


def get(conn: apsw.Connection, user_id: str, room_id: str, type_: str) -> bytes | None:
    for (content,) in conn.execute(
        "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
        (user_id, room_id, type_),
    ):
        return bytes(content)
    return None


def get_with_position(
    conn: apsw.Connection, user_id: str, room_id: str, type_: str
) -> tuple[bytes, int] | None:
    """The content and the stream position it was set at (sliding sync tells from the
    position whether a connection has seen the current m.direct)."""
    for content, position in conn.execute(
        "SELECT content, stream_pos FROM account_data WHERE user_id = ? AND room_id = ?"
        " AND type = ?",
        (user_id, room_id, type_),
    ):
        return bytes(content), int(position)
    return None


def upsert(
    conn: apsw.Connection,
    user_id: str,
    room_id: str,
    type_: str,
    content: bytes,
    position: StreamPos,
) -> None:
    conn.execute(
        "INSERT INTO account_data (user_id, room_id, type, content, stream_pos)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, room_id, type)"
        " DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos",
        (user_id, room_id, type_, content, position),
    )


def changed_since(conn: apsw.Connection, user_id: str, since: int) -> list[tuple[str, str, bytes]]:
    """(room_id, type, content) changed after `since`, for sync."""
    return [
        (str(room_id), str(type_), bytes(content))
        for room_id, type_, content in conn.execute(
            "SELECT room_id, type, content FROM account_data"
            " WHERE user_id = ? AND stream_pos > ? ORDER BY stream_pos",
            (user_id, since),
        )
    ]
