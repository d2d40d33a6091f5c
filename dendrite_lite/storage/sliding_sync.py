"""Sliding sync (MSC4186): per-connection state, and the reads the room list needs.

Connection state (schema_deltas/0003_sliding_sync.sql): a room's row at position P is its
row with the greatest pos_nid <= P. When a client comes back with P, every other position
of the connection is dropped (the MSC: "once a server has seen a request with a given
pos, the server may clean up any per-connection state from before that pos"; positions
after P were never processed by the client), and so are room rows after P and rows that
a newer row at or before P supersedes. So a connection holds at most two rows per room.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import apsw
import msgspec

# Old connections of one device beyond this many are dropped (the MSC's security
# considerations: limit what a device can make the server store).
MAX_CONNECTIONS_PER_DEVICE = 16


@dataclass(frozen=True)
class StoredRoom:
    room_id: str
    stream_pos: int
    membership: str
    config: bytes
    members: bytes


@dataclass(frozen=True)
class StoredPosition:
    conn_nid: int
    pos_nid: int
    stream_pos: int
    typing_serial: int
    lists: bytes
    rooms: list[StoredRoom]


def max_ids(conn: apsw.Connection) -> tuple[int, int]:
    """(greatest conn_nid, greatest pos_nid) ever stored, to number new ones after."""
    row = conn.execute(
        "SELECT (SELECT coalesce(max(conn_nid), 0) FROM sliding_sync_connections),"
        " (SELECT coalesce(max(pos_nid), 0) FROM sliding_sync_positions)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def load_position(
    conn: apsw.Connection, user_id: str, device_id: str, conn_id: str, pos_nid: int
) -> StoredPosition | None:
    """The connection's state as of `pos_nid`, or None if it has no such position."""
    row = conn.execute(
        "SELECT p.conn_nid, p.stream_pos, p.typing_serial, p.lists"
        " FROM sliding_sync_connections AS c JOIN sliding_sync_positions AS p"
        " ON p.conn_nid = c.conn_nid"
        " WHERE c.user_id = ? AND c.device_id = ? AND c.conn_id = ? AND p.pos_nid = ?",
        (user_id, device_id, conn_id, pos_nid),
    ).fetchone()
    if row is None:
        return None
    conn_nid = int(row[0])
    rooms = [
        StoredRoom(str(room_id), int(stream_pos), str(membership), bytes(config), bytes(members))
        for room_id, stream_pos, membership, config, members in conn.execute(
            "SELECT r.room_id, r.stream_pos, r.membership, r.config, r.members"
            " FROM sliding_sync_rooms AS r"
            " WHERE r.conn_nid = ? AND r.pos_nid = (SELECT max(pos_nid) FROM sliding_sync_rooms"
            " WHERE conn_nid = r.conn_nid AND room_id = r.room_id AND pos_nid <= ?)",
            (conn_nid, pos_nid),
        )
    ]
    return StoredPosition(conn_nid, pos_nid, int(row[1]), int(row[2]), bytes(row[3]), rooms)


def start_connection(
    conn: apsw.Connection, conn_nid: int, user_id: str, device_id: str, conn_id: str, now_ms: int
) -> None:
    """A request without `pos`: the connection starts over (its old state is gone)."""
    drop_connection(conn, user_id, device_id, conn_id)
    conn.execute(
        "INSERT INTO sliding_sync_connections (conn_nid, user_id, device_id, conn_id, created_ts)"
        " SELECT ?, ?, ?, ?, ? WHERE EXISTS"
        " (SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?)",
        (conn_nid, user_id, device_id, conn_id, now_ms, user_id, device_id),
    )
    conn.execute(
        "DELETE FROM sliding_sync_connections WHERE conn_nid IN (SELECT conn_nid FROM"
        " sliding_sync_connections WHERE user_id = ? AND device_id = ?"
        " ORDER BY conn_nid DESC LIMIT -1 OFFSET ?)",
        (user_id, device_id, MAX_CONNECTIONS_PER_DEVICE),
    )


def drop_connection(conn: apsw.Connection, user_id: str, device_id: str, conn_id: str) -> None:
    for (conn_nid,) in conn.execute(
        "SELECT conn_nid FROM sliding_sync_connections"
        " WHERE user_id = ? AND device_id = ? AND conn_id = ?",
        (user_id, device_id, conn_id),
    ).fetchall():
        conn.execute("DELETE FROM sliding_sync_rooms WHERE conn_nid = ?", (conn_nid,))
        conn.execute("DELETE FROM sliding_sync_positions WHERE conn_nid = ?", (conn_nid,))
        conn.execute("DELETE FROM sliding_sync_connections WHERE conn_nid = ?", (conn_nid,))


def confirm_position(
    conn: apsw.Connection, conn_nid: int, pos_nid: int, rooms_at_pos: Iterable[str] | None = None
) -> None:
    """The client came back with `pos_nid`: drop every other position and the room rows
    it no longer needs (see the module docstring). `rooms_at_pos`: the rooms with a row
    at `pos_nid`, when known; their older rows are the only ones it supersedes, so they
    are dropped by key instead of by a look at every row of the connection (~0.2 ms for
    500 rooms here, paid with every save)."""
    # Positions given out since the last one confirmed (the oldest kept) other than this
    # one: answers the client never built on (it asked again). Their rows are not part
    # of this position's state, even where older than it.
    siblings = [
        int(nid)
        for (nid,) in conn.execute(
            "SELECT pos_nid FROM sliding_sync_positions WHERE conn_nid = ? AND pos_nid < ?"
            " AND pos_nid > (SELECT min(pos_nid) FROM sliding_sync_positions WHERE conn_nid = ?)",
            (conn_nid, pos_nid, conn_nid),
        )
    ]
    conn.execute(
        "DELETE FROM sliding_sync_positions WHERE conn_nid = ? AND pos_nid != ?",
        (conn_nid, pos_nid),
    )
    conn.execute(
        "DELETE FROM sliding_sync_rooms WHERE conn_nid = ? AND pos_nid > ?", (conn_nid, pos_nid)
    )
    if siblings:
        conn.execute(
            "DELETE FROM sliding_sync_rooms WHERE conn_nid = ?"
            " AND pos_nid IN (SELECT value FROM json_each(?))",
            (conn_nid, msgspec.json.encode(siblings)),
        )
    if rooms_at_pos is not None:
        conn.executemany(
            "DELETE FROM sliding_sync_rooms WHERE conn_nid = ? AND room_id = ? AND pos_nid < ?",
            [(conn_nid, room_id, pos_nid) for room_id in rooms_at_pos],
        )
        return
    conn.execute(
        "DELETE FROM sliding_sync_rooms AS r WHERE r.conn_nid = ? AND r.pos_nid <"
        " (SELECT max(pos_nid) FROM sliding_sync_rooms WHERE conn_nid = r.conn_nid"
        " AND room_id = r.room_id)",
        (conn_nid,),
    )


def add_position(
    conn: apsw.Connection,
    conn_nid: int,
    pos_nid: int,
    stream_pos: int,
    typing_serial: int,
    lists: bytes,
    rooms: Iterable[StoredRoom],
) -> None:
    """Record a response's position and the rooms it sent (only if the connection is
    still there: a deleted device takes its connections with it)."""
    if (
        conn.execute(
            "SELECT 1 FROM sliding_sync_connections WHERE conn_nid = ?", (conn_nid,)
        ).fetchone()
        is None
    ):
        return
    conn.execute(
        "INSERT INTO sliding_sync_positions (pos_nid, conn_nid, stream_pos, typing_serial, lists)"
        " VALUES (?, ?, ?, ?, ?)",
        (pos_nid, conn_nid, stream_pos, typing_serial, lists),
    )
    conn.executemany(
        "INSERT INTO sliding_sync_rooms (conn_nid, room_id, pos_nid, stream_pos, membership,"
        " config, members) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (conn_nid, r.room_id, pos_nid, r.stream_pos, r.membership, r.config, r.members)
            for r in rooms
        ],
    )


# -- the room list ----------------------------------------------------------------------


class ListedRoom(msgspec.Struct, frozen=True, gc=False):
    """A row of the user's room list (user_rooms), newest activity first. A Struct: a
    room list of 500 rows is built on every cache miss, and a frozen dataclass's
    __init__ is ~10x slower."""

    room_id: str
    membership: str
    event_nid: int  # the membership event
    changed_at: int  # stream position of the membership change
    bump_stamp: int
    # For leave/ban: whether someone else did it (kicked or banned), MSC4186 keeps those.
    by_other: bool


# A room's place in a member's list: for a live membership the room's latest bump or the
# membership change, whichever came later; a room the user left stays where they left it
# (schema delta 0013). A row without its room (none is expected) keeps its own stamp.
_BUMP = (
    "CASE WHEN u.membership IN ('join', 'invite', 'knock') AND r.bump_stamp > u.bump_stamp"
    " THEN r.bump_stamp ELSE u.bump_stamp END"
)


def room_list(
    conn: apsw.Connection, user_id: str, changed_after: tuple[int, int] | None = None
) -> list[ListedRoom]:
    """The user's rooms, newest activity first; with `changed_after` = (stream_pos,
    event_nid) maxima of an earlier read, only the rows whose membership changed since
    (a membership change takes a greater stream position, a new membership event a
    greater event_nid), in no particular order. Bumps since are `bumps`' to tell. (The
    full list is sorted from the user's rows in primary key order; schema delta 0012
    says why there is no recency index.)"""
    rest = " ORDER BY bump DESC, u.room_id"
    params: tuple[object, ...] = (user_id,)
    if changed_after is not None:
        rest = " AND (u.stream_pos > ? OR u.event_nid > ?)"
        params = (user_id, *changed_after)
    return [
        ListedRoom(
            room_id,
            membership,
            event_nid,
            changed_at,
            bump,
            sender is not None and sender != user_id,
        )
        for room_id, membership, event_nid, changed_at, bump, sender in conn.execute(
            f"SELECT u.room_id, u.membership, u.event_nid, u.stream_pos, {_BUMP} AS bump,"
            " CASE WHEN u.membership IN ('leave', 'ban') THEN"
            "  (SELECT sender FROM events WHERE event_nid = u.event_nid) END"
            " FROM user_rooms AS u LEFT JOIN rooms AS r ON r.room_id = u.room_id"
            f" WHERE u.user_id = ? AND u.forgotten = 0{rest}",
            params,
        )
    ]


def bumps(conn: apsw.Connection, room_ids: Iterable[str]) -> dict[str, int]:
    """room_id -> the room's latest bump (0: none yet), for these rooms."""
    return {
        str(room_id): int(stamp)
        for room_id, stamp in conn.execute(
            "SELECT room_id, bump_stamp FROM rooms"
            " WHERE room_id IN (SELECT value FROM json_each(?))",
            (msgspec.json.encode(list(room_ids)),),
        )
    }


def unread_counts(
    conn: apsw.Connection, user_id: str, room_ids: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """room_id -> (notifications, highlights) over all its threads, for these rooms.

    A woken long-poll asks for the one room it sends: by key, without a JSON list of
    rooms, that is 8 us against 15 (fifteenth session). The threads are summed here."""
    wanted = list(room_ids)
    if not wanted:
        return {}
    if len(wanted) == 1:
        rows = conn.execute(
            "SELECT room_id, notifications, highlights FROM push_counts"
            " WHERE room_id = ? AND user_id = ?",
            (wanted[0], user_id),
        )
    else:
        rows = conn.execute(
            "SELECT room_id, notifications, highlights FROM push_counts"
            " WHERE room_id IN (SELECT value FROM json_each(?)) AND user_id = ?",
            (msgspec.json.encode(wanted), user_id),
        )
    counts: dict[str, tuple[int, int]] = {}
    for room_id, count, highlights in rows:
        before = counts.get(room_id, (0, 0))
        counts[str(room_id)] = (before[0] + int(count), before[1] + int(highlights))
    return counts


def room_list_version(conn: apsw.Connection, user_id: str) -> int:
    """A number that every change to the user's user_rooms rows raises (schema delta
    0014's triggers); 0 for a user without rooms."""
    for (version,) in conn.execute(
        "SELECT version FROM room_list_versions WHERE user_id = ?", (user_id,)
    ):
        return int(version)
    return 0


def memberships_summary(conn: apsw.Connection, user_id: str) -> tuple[int, int, int, int]:
    """(rows, the greatest stream_pos, the greatest event_nid, rows forgotten) of the
    user's user_rooms: a membership change takes a new, greater stream position, a new
    membership event a greater event_nid; forgetting flips a flag; rooms come and go.
    Read when room_list_version says something changed, to find what."""
    row = conn.execute(
        "SELECT count(*), coalesce(max(stream_pos), 0), coalesce(max(event_nid), 0),"
        " coalesce(sum(forgotten), 0) FROM user_rooms WHERE user_id = ?",
        (user_id,),
    ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def encrypted_rooms(conn: apsw.Connection, user_id: str) -> set[str]:
    return {
        str(room_id)
        for (room_id,) in conn.execute(
            "SELECT u.room_id FROM user_rooms AS u JOIN current_state AS c"
            " ON c.room_id = u.room_id AND c.type = 'm.room.encryption' AND c.state_key = ''"
            " WHERE u.user_id = ?",
            (user_id,),
        )
    }


def room_types(conn: apsw.Connection, user_id: str) -> dict[str, str | None]:
    """The `type` of each of the user's rooms' m.room.create content (None: untyped)."""
    found: dict[str, str | None] = {}
    for room_id, room_type in conn.execute(
        "SELECT u.room_id, json_extract(CAST(e.client AS TEXT), '$.content.type')"
        " FROM user_rooms AS u JOIN current_state AS c ON c.room_id = u.room_id"
        " AND c.type = 'm.room.create' AND c.state_key = ''"
        " JOIN events AS e ON e.event_nid = c.event_nid WHERE u.user_id = ?",
        (user_id,),
    ):
        found[str(room_id)] = room_type if isinstance(room_type, str) else None
    return found


def room_tags(conn: apsw.Connection, user_id: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for room_id, content in conn.execute(
        "SELECT room_id, content FROM account_data WHERE user_id = ? AND type = 'm.tag'"
        " AND room_id != ''",
        (user_id,),
    ):
        try:
            tags = msgspec.json.decode(content).get("tags")
        except (msgspec.DecodeError, AttributeError):
            continue
        if isinstance(tags, dict):
            found[str(room_id)] = set(tags)
    return found


def space_children(conn: apsw.Connection, space_ids: Iterable[str]) -> set[str]:
    """Rooms named by a live m.space.child (one with `via`) in any of the spaces."""
    wanted = list(space_ids)
    if not wanted:
        return set()
    return {
        str(child)
        for (child,) in conn.execute(
            "SELECT c.state_key FROM current_state AS c JOIN events AS e"
            " ON e.event_nid = c.event_nid"
            " WHERE c.room_id IN (SELECT value FROM json_each(?)) AND c.type = 'm.space.child'"
            " AND json_type(CAST(e.client AS TEXT), '$.content.via') = 'array'",
            (msgspec.json.encode(wanted),),
        )
    }


# -- per room ---------------------------------------------------------------------------


def latest_stream_pos(conn: apsw.Connection, room_id: str, upto: int) -> int:
    row = conn.execute(
        "SELECT max(stream_pos) FROM events WHERE room_id = ? AND stream_pos <= ?",
        (room_id, upto),
    ).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def latest_stream_positions(
    conn: apsw.Connection, room_ids: Iterable[str], upto: int
) -> dict[str, int]:
    """Each room's newest stream position up to `upto`, in one statement (one index
    probe per room)."""
    wanted = list(room_ids)
    if not wanted:
        return {}
    return {
        str(room_id): int(position)
        for room_id, position in conn.execute(
            "SELECT value, (SELECT max(stream_pos) FROM events WHERE room_id = value"
            " AND stream_pos <= ?) FROM json_each(?)",
            (upto, msgspec.json.encode(wanted)),
        )
        if position is not None
    }


def all_members(conn: apsw.Connection, room_id: str) -> dict[str, int]:
    return {
        str(k): int(nid)
        for k, nid in conn.execute(
            "SELECT state_key, event_nid FROM current_state"
            " WHERE room_id = ? AND type = 'm.room.member'",
            (room_id,),
        )
    }


def state_changes(
    conn: apsw.Connection, room_id: str, after: int, upto: int
) -> set[tuple[str, str]]:
    """The state keys set by events in (after, upto]."""
    return {
        (str(t), str(k))
        for t, k in conn.execute(
            "SELECT type, state_key FROM events WHERE room_id = ? AND stream_pos > ?"
            " AND stream_pos <= ? AND state_key IS NOT NULL",
            (room_id, after, upto),
        )
    }


def only_messages_between(
    conn: apsw.Connection, room_id: str, after: int, upto: int, limit: int
) -> bool:
    """Whether the room's events in (after, upto] are at most `limit`, none of them a
    state event or a redaction (the only events that change what is stored before them)."""
    rows = conn.execute(
        "SELECT state_key IS NOT NULL OR type = 'm.room.redaction' FROM events"
        " WHERE room_id = ? AND stream_pos > ? AND stream_pos <= ? LIMIT ?",
        (room_id, after, upto, limit + 1),
    ).fetchall()
    return len(rows) <= limit and not any(changes for (changes,) in rows)


def account_data_since(
    conn: apsw.Connection, user_id: str, since: int
) -> list[tuple[str, str, bytes, int]]:
    """(room_id, type, content, stream_pos) of the account data changed after `since`."""
    return [
        (str(room_id), str(type_), bytes(content), int(position))
        for room_id, type_, content, position in conn.execute(
            "SELECT room_id, type, content, stream_pos FROM account_data"
            " WHERE user_id = ? AND stream_pos > ? ORDER BY stream_pos",
            (user_id, since),
        )
    ]


def room_account_data(
    conn: apsw.Connection, user_id: str, room_ids: list[str]
) -> list[tuple[str, str, bytes, int]]:
    """(room_id, type, content, stream_pos) of all the account data of these rooms, in
    stream order. Sorted here: with ORDER BY, SQLite walks the user's whole stream index
    instead of the primary key's entries of these rooms (390 us against 15 us with 600
    rows)."""
    rows = [
        (str(room_id), str(type_), bytes(content), int(position))
        for room_id, type_, content, position in conn.execute(
            "SELECT room_id, type, content, stream_pos FROM account_data"
            " WHERE user_id = ? AND room_id IN (SELECT value FROM json_each(?))",
            (user_id, msgspec.json.encode(room_ids)),
        )
    ]
    rows.sort(key=lambda row: row[3])
    return rows


# -- the profiles extension (MSC4262) ---------------------------------------------------


def profile_fields_of(
    conn: apsw.Connection, user_ids: Iterable[str]
) -> list[tuple[str, str, bytes]]:
    """(user_id, field, JSON value) of every profile field of these users."""
    wanted = sorted(user_ids)
    if not wanted:
        return []
    return [
        (str(user_id), str(field), bytes(value))
        for user_id, field, value in conn.execute(
            "SELECT user_id, field, value FROM profile_fields"
            " WHERE user_id IN (SELECT value FROM json_each(?))",
            (msgspec.json.encode(wanted),),
        )
    ]


def profile_changes(
    conn: apsw.Connection, user_id: str, after: int, upto: int
) -> list[tuple[str, str, bytes | None]]:
    """(user_id, field, JSON value or None if removed) of the profile fields changed in
    (after, upto] by `user_id` or by anyone sharing a joined room with them (index
    profile_updates_by_stream: nothing to read when nothing changed)."""
    return [
        (str(other), str(field), None if value is None else bytes(value))
        for other, field, value in conn.execute(
            "SELECT p.user_id, p.field, f.value FROM profile_updates AS p"
            " LEFT JOIN profile_fields AS f ON f.user_id = p.user_id AND f.field = p.field"
            " WHERE p.stream_pos > ? AND p.stream_pos <= ? AND (p.user_id = ? OR EXISTS"
            "  (SELECT 1 FROM user_rooms AS a JOIN user_rooms AS b ON b.user_id = p.user_id"
            "   AND b.room_id = a.room_id AND b.membership = 'join'"
            "   WHERE a.user_id = ? AND a.membership = 'join'))"
            " ORDER BY p.stream_pos",
            (after, upto, user_id, user_id),
        )
    ]


def joined_members(conn: apsw.Connection, room_ids: Iterable[str], limit: int) -> list[str]:
    """Up to `limit` distinct users joined to any of these rooms."""
    wanted = list(room_ids)
    if not wanted:
        return []
    return [
        str(member)
        for (member,) in conn.execute(
            "SELECT DISTINCT user_id FROM user_rooms WHERE membership = 'join'"
            " AND room_id IN (SELECT value FROM json_each(?)) LIMIT ?",
            (msgspec.json.encode(wanted), limit),
        )
    ]
