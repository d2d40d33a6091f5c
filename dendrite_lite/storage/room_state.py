"""Room state: delta-compressed snapshots (state groups) and each room's current state.

A state group is its parent plus the entries it lists; an entry whose event_nid is NULL
removes that key. After MAX_CHAIN deltas a full snapshot is written instead, so reading
the state at any event walks at most MAX_CHAIN + 1 groups.
"""

from __future__ import annotations

from collections.abc import Mapping

import apsw

StateKey = tuple[str, str]
StateMap = dict[StateKey, int]  # (type, state_key) -> event_nid

MAX_CHAIN = 32


def state_at(conn: apsw.Connection, group_nid: int) -> StateMap:
    """The full state of a group."""
    state: StateMap = {}
    for type_, state_key, event_nid, _level in conn.execute(
        "WITH RECURSIVE chain (nid, level) AS ("
        "  SELECT ?, 0"
        "  UNION ALL"
        "  SELECT g.parent_nid, chain.level + 1 FROM state_groups AS g"
        "  JOIN chain ON g.group_nid = chain.nid WHERE g.parent_nid IS NOT NULL"
        ")"
        " SELECT e.type, e.state_key, e.event_nid, min(chain.level) FROM state_group_entries AS e"
        " JOIN chain ON e.group_nid = chain.nid GROUP BY e.type, e.state_key",
        (group_nid,),
    ):
        if event_nid is not None:
            state[(str(type_), str(state_key))] = int(event_nid)
    return state


def state_entry_at(conn: apsw.Connection, group_nid: int, type_: str, state_key: str) -> int | None:
    for (event_nid,) in conn.execute(
        "WITH RECURSIVE chain (nid, level) AS ("
        "  SELECT ?, 0"
        "  UNION ALL"
        "  SELECT g.parent_nid, chain.level + 1 FROM state_groups AS g"
        "  JOIN chain ON g.group_nid = chain.nid WHERE g.parent_nid IS NOT NULL"
        ")"
        " SELECT e.event_nid FROM state_group_entries AS e JOIN chain ON e.group_nid = chain.nid"
        " WHERE e.type = ? AND e.state_key = ? ORDER BY chain.level LIMIT 1",
        (group_nid, type_, state_key),
    ):
        return None if event_nid is None else int(event_nid)
    return None


def visibility_entries_at(
    conn: apsw.Connection, group_nid: int, user_id: str
) -> tuple[bytes | None, str | None]:
    """In one walk of the group's chain: the client JSON of m.room.history_visibility and
    the membership of the user's m.room.member event (None where the state has none).
    What history visibility asks of every state group (rooms/visibility.py); one query
    instead of four."""
    found: dict[str, tuple[int | None, str | None, bytes | None]] = {}
    for type_, event_nid, membership, client in conn.execute(
        "WITH RECURSIVE chain (nid, level) AS ("
        "  SELECT ?1, 0"
        "  UNION ALL"
        "  SELECT g.parent_nid, chain.level + 1 FROM state_groups AS g"
        "  JOIN chain ON g.group_nid = chain.nid WHERE g.parent_nid IS NOT NULL"
        ")"
        " SELECT e.type, e.event_nid, v.membership,"
        "  CASE WHEN e.type = 'm.room.history_visibility' THEN v.client END"
        " FROM chain JOIN state_group_entries AS e ON e.group_nid = chain.nid"
        "  AND ((e.type = 'm.room.history_visibility' AND e.state_key = '')"
        "   OR (e.type = 'm.room.member' AND e.state_key = ?2))"
        " LEFT JOIN events AS v ON v.event_nid = e.event_nid"
        " ORDER BY chain.level",
        (group_nid, user_id),
    ):
        # The nearest group's entry wins (a NULL event_nid there removed the key).
        found.setdefault(type_, (event_nid, membership, client))
    visibility = found.get("m.room.history_visibility")
    member = found.get("m.room.member")
    return (
        None if visibility is None or visibility[0] is None else visibility[2],
        None if member is None or member[0] is None else member[1],
    )


def new_group(
    conn: apsw.Connection,
    room_id: str,
    parent_nid: int | None,
    delta: Mapping[StateKey, int | None],
) -> int:
    """A new state group: `parent` with `delta` applied (full snapshot when the chain is long)."""
    chain_len = 0
    if parent_nid is not None:
        row = conn.execute(
            "SELECT chain_len FROM state_groups WHERE group_nid = ?", (parent_nid,)
        ).fetchone()
        chain_len = int(row[0]) + 1 if row else 0
    entries: dict[StateKey, int | None]
    if parent_nid is not None and chain_len > MAX_CHAIN:
        full: dict[StateKey, int | None] = {**state_at(conn, parent_nid), **delta}
        entries = {key: nid for key, nid in full.items() if nid is not None}
        parent_nid, chain_len = None, 0
    elif parent_nid is None:
        entries = {key: nid for key, nid in delta.items() if nid is not None}
    else:
        entries = dict(delta)
    conn.execute(
        "INSERT INTO state_groups (room_id, parent_nid, chain_len) VALUES (?, ?, ?)",
        (room_id, parent_nid, chain_len),
    )
    group_nid = conn.last_insert_rowid()
    conn.executemany(
        "INSERT INTO state_group_entries (group_nid, type, state_key, event_nid)"
        " VALUES (?, ?, ?, ?)",
        [(group_nid, t, k, nid) for (t, k), nid in entries.items()],
    )
    return group_nid


def current_state(conn: apsw.Connection, room_id: str) -> StateMap:
    return {
        (str(t), str(k)): int(nid)
        for t, k, nid in conn.execute(
            "SELECT type, state_key, event_nid FROM current_state WHERE room_id = ?", (room_id,)
        )
    }


def current_entry(conn: apsw.Connection, room_id: str, type_: str, state_key: str) -> int | None:
    for (nid,) in conn.execute(
        "SELECT event_nid FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?",
        (room_id, type_, state_key),
    ):
        return int(nid)
    return None


def current_entries(
    conn: apsw.Connection, room_id: str, keys: list[StateKey]
) -> dict[StateKey, int]:
    found: dict[StateKey, int] = {}
    for type_, state_key in keys:
        nid = current_entry(conn, room_id, type_, state_key)
        if nid is not None:
            found[(type_, state_key)] = nid
    return found


def set_current(
    conn: apsw.Connection,
    room_id: str,
    type_: str,
    state_key: str,
    event_nid: int,
    membership: str | None,
) -> None:
    conn.execute(
        "INSERT INTO current_state (room_id, type, state_key, event_nid, membership)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, type, state_key) DO UPDATE SET"
        " event_nid = excluded.event_nid, membership = excluded.membership",
        (room_id, type_, state_key, event_nid, membership),
    )


def members(conn: apsw.Connection, room_id: str, membership: str = "join") -> list[str]:
    return [
        str(user_id)
        for (user_id,) in conn.execute(
            "SELECT state_key FROM current_state WHERE room_id = ? AND membership = ?"
            " AND type = 'm.room.member'",
            (room_id, membership),
        )
    ]


def member_counts(conn: apsw.Connection, room_id: str) -> dict[str, int]:
    return {
        str(membership): int(count)
        for membership, count in conn.execute(
            "SELECT membership, count(*) FROM current_state WHERE room_id = ?"
            " AND membership IS NOT NULL AND type = 'm.room.member' GROUP BY membership",
            (room_id,),
        )
    }
