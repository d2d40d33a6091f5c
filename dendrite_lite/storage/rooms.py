"""Rooms, and each user's rooms (the per-user room list)."""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class RoomRow:
    room_id: str
    room_version: str
    creator: str
    created_ts: int
    state_group: int | None
    is_public: bool


def get(conn: apsw.Connection, room_id: str) -> RoomRow | None:
    for row in conn.execute(
        "SELECT room_id, room_version, creator, created_ts, state_group, is_public"
        " FROM rooms WHERE room_id = ?",
        (room_id,),
    ):
        return RoomRow(row[0], row[1], row[2], row[3], row[4], bool(row[5]))
    return None


def insert(
    conn: apsw.Connection, room_id: str, room_version: str, creator: str, created_ts: int
) -> None:
    conn.execute(
        "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)",
        (room_id, room_version, creator, created_ts),
    )


def set_state_group(conn: apsw.Connection, room_id: str, group_nid: int) -> None:
    conn.execute("UPDATE rooms SET state_group = ? WHERE room_id = ?", (group_nid, room_id))


def set_public(conn: apsw.Connection, room_id: str, is_public: bool) -> None:
    conn.execute("UPDATE rooms SET is_public = ? WHERE room_id = ?", (int(is_public), room_id))


def set_membership(
    conn: apsw.Connection,
    user_id: str,
    room_id: str,
    membership: str,
    event_nid: int,
    stream_pos: int,
) -> None:
    """Record a membership change; the room moves to the top of the user's list."""
    conn.execute(
        "INSERT INTO user_rooms (user_id, room_id, membership, event_nid, stream_pos, bump_stamp)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, room_id) DO UPDATE SET"
        " membership = excluded.membership, event_nid = excluded.event_nid,"
        " stream_pos = excluded.stream_pos, bump_stamp = excluded.bump_stamp, forgotten = 0",
        (user_id, room_id, membership, event_nid, stream_pos, stream_pos),
    )


def bump(conn: apsw.Connection, room_id: str, stream_pos: int) -> None:
    """A bump event arrived: every member's list moves the room up."""
    conn.execute(
        "UPDATE user_rooms SET bump_stamp = ? WHERE room_id = ?"
        " AND membership IN ('join', 'invite', 'knock')",
        (stream_pos, room_id),
    )


def membership_of(conn: apsw.Connection, user_id: str, room_id: str) -> tuple[str, int] | None:
    """(membership, event_nid) of the user's current membership in the room."""
    for membership, event_nid in conn.execute(
        "SELECT membership, event_nid FROM user_rooms WHERE user_id = ? AND room_id = ?",
        (user_id, room_id),
    ):
        return str(membership), int(event_nid)
    return None


def rooms_for_user(conn: apsw.Connection, user_id: str, membership: str = "join") -> list[str]:
    return [
        str(room_id)
        for (room_id,) in conn.execute(
            "SELECT room_id FROM user_rooms WHERE user_id = ? AND membership = ?"
            " ORDER BY bump_stamp DESC",
            (user_id, membership),
        )
    ]


def forget(conn: apsw.Connection, user_id: str, room_id: str) -> bool:
    conn.execute(
        "UPDATE user_rooms SET forgotten = 1 WHERE user_id = ? AND room_id = ?"
        " AND membership IN ('leave', 'ban')",
        (user_id, room_id),
    )
    return conn.changes() > 0


def share_a_room(conn: apsw.Connection, user_a: str, user_b: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM user_rooms AS a JOIN user_rooms AS b ON a.room_id = b.room_id"
            " WHERE a.user_id = ? AND b.user_id = ? AND a.membership = 'join'"
            " AND b.membership = 'join' LIMIT 1",
            (user_a, user_b),
        ).fetchone()
        is not None
    )
