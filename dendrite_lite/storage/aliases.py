"""Room aliases: https://spec.matrix.org/latest/client-server-api/#room-aliases"""

from __future__ import annotations

import apsw


def get(conn: apsw.Connection, alias: str) -> str | None:
    for (room_id,) in conn.execute("SELECT room_id FROM room_aliases WHERE alias = ?", (alias,)):
        return str(room_id)
    return None


def creator_of(conn: apsw.Connection, alias: str) -> str | None:
    for (creator,) in conn.execute("SELECT creator FROM room_aliases WHERE alias = ?", (alias,)):
        return str(creator)
    return None


def insert(conn: apsw.Connection, alias: str, room_id: str, creator: str, now: int) -> None:
    conn.execute(
        "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?, ?, ?, ?)",
        (alias, room_id, creator, now),
    )


def delete(conn: apsw.Connection, alias: str) -> bool:
    conn.execute("DELETE FROM room_aliases WHERE alias = ?", (alias,))
    return conn.changes() > 0


def for_room(conn: apsw.Connection, room_id: str) -> list[str]:
    return [
        str(alias)
        for (alias,) in conn.execute(
            "SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", (room_id,)
        )
    ]


def move_room(conn: apsw.Connection, old_room_id: str, new_room_id: str) -> list[str]:
    """Point every local alias of a room at another room (room upgrades); the aliases moved."""
    return [
        str(alias)
        for (alias,) in conn.execute(
            "UPDATE room_aliases SET room_id = ? WHERE room_id = ? RETURNING alias",
            (new_room_id, old_room_id),
        )
    ]
