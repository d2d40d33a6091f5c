"""Room state: delta-compressed snapshots (state groups) and each room's current state.

A state group is its parent plus the entries it lists; an entry whose event_nid is NULL
removes that key. After MAX_CHAIN deltas a full snapshot is written instead, so reading
the state at any event walks at most MAX_CHAIN + 1 groups.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import apsw
import msgspec

StateKey = tuple[str, str]
StateMap = dict[StateKey, int]  # (type, state_key) -> event_nid

MAX_CHAIN = 32


def _chains(seed: str) -> str:
    """The chain of each group the seed selects (`root`), nearest group first (`level` 0)."""
    return (
        f"WITH RECURSIVE chain (root, nid, level) AS ({seed}"
        "  UNION ALL"
        "  SELECT chain.root, g.parent_nid, chain.level + 1 FROM state_groups AS g"
        "  JOIN chain ON g.group_nid = chain.nid WHERE g.parent_nid IS NOT NULL"
        ")"
    )


# ?1: one group, or a JSON list of them (the one-group form plans a little faster).
_ONE_CHAIN = _chains("SELECT ?1, ?1, 0")
_CHAINS = _chains("SELECT value, value, 0 FROM json_each(?1)")


def _groups_param(groups: Collection[int]) -> tuple[str, int | bytes]:
    if len(groups) == 1:
        return _ONE_CHAIN, next(iter(groups))
    return _CHAINS, msgspec.json.encode(sorted(groups))


def state_at(conn: apsw.Connection, group_nid: int) -> StateMap:
    """The full state of a group."""
    return states_at(conn, [group_nid])[group_nid]


def states_at(conn: apsw.Connection, group_nids: Collection[int]) -> dict[int, StateMap]:
    """The full state of each group, in one statement: a sync that sends hundreds of
    rooms whole reads them together (a statement per group costs several times more)."""
    states: dict[int, StateMap] = {int(group): {} for group in group_nids}
    chains, groups = _groups_param(states)
    for root, type_, state_key, event_nid, _level in conn.execute(
        chains + " SELECT chain.root, e.type, e.state_key, e.event_nid, min(chain.level)"
        " FROM state_group_entries AS e JOIN chain ON e.group_nid = chain.nid"
        " GROUP BY chain.root, e.type, e.state_key",
        (groups,),
    ):
        if event_nid is not None:
            states[int(root)][(str(type_), str(state_key))] = int(event_nid)
    return states


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


VisibilityEntries = tuple[bytes | None, str | None]


def visibility_entries_at(conn: apsw.Connection, group_nid: int, user_id: str) -> VisibilityEntries:
    """The client JSON of m.room.history_visibility in a group and the membership of the
    user's m.room.member event (None where the state has none)."""
    return visibility_entries_in(conn, [group_nid], user_id)[group_nid]


def visibility_entries_in(
    conn: apsw.Connection, group_nids: Collection[int], user_id: str
) -> dict[int, VisibilityEntries]:
    """What history visibility asks of each state group (rooms/visibility.py), in one
    walk of all the groups' chains: one statement instead of four per group, and one
    for a whole sync's rooms."""
    found: dict[int, dict[str, tuple[int | None, str | None, bytes | None]]] = {
        int(group): {} for group in group_nids
    }
    chains, groups = _groups_param(found)
    for root, type_, event_nid, membership, client in conn.execute(
        chains + " SELECT chain.root, e.type, e.event_nid, v.membership,"
        "  CASE WHEN e.type = 'm.room.history_visibility' THEN v.client END"
        " FROM chain JOIN state_group_entries AS e ON e.group_nid = chain.nid"
        "  AND ((e.type = 'm.room.history_visibility' AND e.state_key = '')"
        "   OR (e.type = 'm.room.member' AND e.state_key = ?2))"
        " LEFT JOIN events AS v ON v.event_nid = e.event_nid"
        " ORDER BY chain.root, chain.level",
        (groups, user_id),
    ):
        # The nearest group's entry wins (a NULL event_nid there removed the key).
        found[int(root)].setdefault(type_, (event_nid, membership, client))
    result: dict[int, VisibilityEntries] = {}
    for group, entries in found.items():
        visibility = entries.get("m.room.history_visibility")
        member = entries.get("m.room.member")
        result[group] = (
            None if visibility is None or visibility[0] is None else visibility[2],
            None if member is None or member[0] is None else member[1],
        )
    return result


def current_groups(conn: apsw.Connection, room_ids: Collection[str]) -> dict[str, int | None]:
    """Each room's current state group (rooms the server does not have are left out)."""
    return {
        str(room_id): None if group is None else int(group)
        for room_id, group in conn.execute(
            "SELECT room_id, state_group FROM rooms WHERE room_id IN (SELECT value FROM"
            " json_each(?))",
            (msgspec.json.encode(sorted(room_ids)),),
        )
    }


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
    return member_counts_in(conn, [room_id]).get(room_id, {})


def member_counts_in(conn: apsw.Connection, room_ids: Collection[str]) -> dict[str, dict[str, int]]:
    """membership -> count, per room (rooms without members are left out)."""
    counts: dict[str, dict[str, int]] = {}
    for room_id, membership, count in conn.execute(
        "SELECT room_id, membership, count(*) FROM current_state"
        " WHERE room_id IN (SELECT value FROM json_each(?))"
        " AND membership IS NOT NULL AND type = 'm.room.member' GROUP BY room_id, membership",
        (msgspec.json.encode(sorted(room_ids)),),
    ):
        counts.setdefault(str(room_id), {})[str(membership)] = int(count)
    return counts


def first_members(
    conn: apsw.Connection, room_ids: Collection[str], memberships: Collection[str], limit: int
) -> dict[str, list[tuple[str, bytes]]]:
    """Per room, (user_id, member event client JSON) of the first `limit` members by
    stream order of their member event whose membership is one of `memberships`: the
    candidates for heroes (rooms with none left out)."""
    found: dict[str, list[tuple[str, bytes]]] = {}
    for room_id, member, client in conn.execute(
        "SELECT room_id, state_key, client FROM ("
        " SELECT c.room_id, c.state_key, e.client, row_number() OVER"
        "  (PARTITION BY c.room_id ORDER BY e.stream_pos) AS n"
        " FROM current_state AS c JOIN events AS e ON e.event_nid = c.event_nid"
        " WHERE c.room_id IN (SELECT value FROM json_each(?1)) AND c.type = 'm.room.member'"
        " AND c.membership IN (SELECT value FROM json_each(?2))"
        ") WHERE n <= ?3 ORDER BY room_id, n",
        (msgspec.json.encode(sorted(room_ids)), msgspec.json.encode(sorted(memberships)), limit),
    ):
        found.setdefault(str(room_id), []).append((str(member), bytes(client)))
    return found
