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
    """Record a membership event; a changed membership moves the room to the top.

    A join after a join (a new displayname) is not a change of membership: stream_pos and
    bump_stamp stay, so sync does not treat the room as newly joined.
    """
    conn.execute(
        "INSERT INTO user_rooms (user_id, room_id, membership, event_nid, stream_pos, bump_stamp)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, room_id) DO UPDATE SET"
        " event_nid = excluded.event_nid, forgotten = 0,"
        " stream_pos = CASE WHEN user_rooms.membership = excluded.membership"
        "   THEN user_rooms.stream_pos ELSE excluded.stream_pos END,"
        " bump_stamp = CASE WHEN user_rooms.membership = excluded.membership"
        "   THEN user_rooms.bump_stamp ELSE excluded.bump_stamp END,"
        " membership = excluded.membership",
        (user_id, room_id, membership, event_nid, stream_pos, stream_pos),
    )


def bump(conn: apsw.Connection, room_id: str, stream_pos: int) -> None:
    """A bump event arrived: the room moves up in its live members' lists (one row,
    whatever the number of members; storage/sliding_sync.room_list reads it)."""
    conn.execute("UPDATE rooms SET bump_stamp = ? WHERE room_id = ?", (stream_pos, room_id))


def membership_of(conn: apsw.Connection, user_id: str, room_id: str) -> tuple[str, int] | None:
    """(membership, event_nid) of the user's current membership in the room."""
    for membership, event_nid in conn.execute(
        "SELECT membership, event_nid FROM user_rooms WHERE user_id = ? AND room_id = ?",
        (user_id, room_id),
    ):
        return str(membership), int(event_nid)
    return None


def rooms_for_user(conn: apsw.Connection, user_id: str, membership: str = "join") -> list[str]:
    """The user's rooms with this membership, in room ID order (the key's): no caller
    needs recency, and user_rooms.bump_stamp is no longer the room's activity."""
    return [
        str(room_id)
        for (room_id,) in conn.execute(
            "SELECT room_id FROM user_rooms WHERE user_id = ? AND membership = ?",
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


def is_forgotten(conn: apsw.Connection, user_id: str, room_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM user_rooms WHERE user_id = ? AND room_id = ? AND forgotten = 1",
            (user_id, room_id),
        ).fetchone()
        is not None
    )


# -- the published room directory ------------------------------------------------------

# The state the directory shows (empty state keys), and the query column holding each.
DIRECTORY_STATE = {
    "m.room.create": "create_c",
    "m.room.name": "name_c",
    "m.room.topic": "topic_c",
    "m.room.avatar": "avatar_c",
    "m.room.canonical_alias": "alias_c",
    "m.room.join_rules": "join_c",
    "m.room.history_visibility": "history_c",
    "m.room.guest_access": "guest_c",
}
_TYPES_SQL = ", ".join(f"'{t}'" for t in DIRECTORY_STATE)
_PIVOT_SQL = ", ".join(
    f"max(CASE WHEN type = '{t}' THEN content END) AS {column}"
    for t, column in DIRECTORY_STATE.items()
)


@dataclass(frozen=True)
class PublishedRoomRow:
    room_id: str
    joined: int
    # The `content` JSON of each directory state event the room has, by event type.
    content: dict[str, str]


@dataclass(frozen=True)
class DirectoryQuery:
    limit: int
    # Keyset pagination on (joined members DESC, room ID ASC): the row to start after
    # (forwards) or before (backwards).
    after: tuple[int, str] | None = None
    before: tuple[int, str] | None = None
    search: str | None = None
    # None: every room; otherwise the wanted create `type`s, "" standing for no type.
    room_types: tuple[str, ...] | None = None


def published_rooms(conn: apsw.Connection, query: DirectoryQuery) -> list[PublishedRoomRow]:
    """One page of the published rooms in directory order (most joined members first).

    One query for the page, whatever its size; backward pages come in directory order too.
    """
    clauses: list[str] = []
    params: list[object] = []
    if query.search:
        clauses.append(
            "instr(lower(coalesce(json_extract(name_c, '$.name'), '') || char(10) ||"
            " coalesce(json_extract(topic_c, '$.topic'), '') || char(10) ||"
            " coalesce(json_extract(alias_c, '$.alias'), '')), lower(?)) > 0"
        )
        params.append(query.search)
    if query.room_types is not None:
        clauses.append(
            "(json_extract(create_c, '$.type') IN (SELECT value FROM json_each(?))"
            " OR (? AND json_extract(create_c, '$.type') IS NULL))"
        )
        params += [_json_list([t for t in query.room_types if t]), int("" in query.room_types)]
    order = "joined DESC, room_id ASC"
    if query.after is not None:
        clauses.append("(joined < ? OR (joined = ? AND room_id > ?))")
        params += [query.after[0], query.after[0], query.after[1]]
    elif query.before is not None:
        clauses.append("(joined > ? OR (joined = ? AND room_id < ?))")
        params += [query.before[0], query.before[0], query.before[1]]
        order = "joined ASC, room_id DESC"
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        "WITH state AS ("
        "  SELECT r.room_id AS room_id, s.type AS type,"
        "   json_extract(CAST(e.client AS TEXT), '$.content') AS content"
        "  FROM rooms AS r"
        "  JOIN current_state AS s ON s.room_id = r.room_id AND s.state_key = ''"
        f"   AND s.type IN ({_TYPES_SQL})"
        "  JOIN events AS e ON e.event_nid = s.event_nid"
        "  WHERE r.is_public = 1"
        "), listed AS ("
        "  SELECT room_id, (SELECT count(*) FROM current_state AS m"
        "   WHERE m.room_id = state.room_id AND m.membership = 'join'"
        f"   AND m.type = 'm.room.member') AS joined, {_PIVOT_SQL}"
        "  FROM state GROUP BY room_id"
        f") SELECT * FROM listed {where} ORDER BY {order} LIMIT ?",
        [*params, query.limit],
    ).fetchall()
    page = [
        PublishedRoomRow(
            str(row[0]),
            int(row[1]),  # type: ignore[arg-type]
            {
                t: str(value)
                for t, value in zip(DIRECTORY_STATE, row[2:], strict=True)
                if value is not None
            },
        )
        for row in rows
    ]
    if query.before is not None:
        page.reverse()
    return page


def count_published(conn: apsw.Connection) -> int:
    for (count,) in conn.execute("SELECT count(*) FROM rooms WHERE is_public = 1"):
        return int(count)
    return 0


def _json_list(values: list[str]) -> str:
    import json

    return json.dumps(values)
