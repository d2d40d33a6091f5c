"""Events: stored once, as the signed PDU and as the client-format JSON."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.storage import snapshot


class EventRow(msgspec.Struct, frozen=True, gc=False):
    """A stored event as the read paths need it. A Struct, not a dataclass: an initial
    sync builds ~15,000 of these, and a frozen dataclass's __init__ (plus a conversion
    per column) cost ~3 µs each against ~0.1 µs here. No cycles are possible (scalars
    only), hence gc=False."""

    event_nid: int
    event_id: str
    room_id: str
    type: str
    state_key: str | None
    sender: str
    origin_server_ts: int
    depth: int
    stream_pos: int
    state_before: int | None
    state_after: int | None
    client: bytes
    redacted_by: str | None
    txn_id: str | None
    device_id: str | None
    unsigned: bytes


_COLUMNS = (
    "event_nid, event_id, room_id, type, state_key, sender, origin_server_ts, depth,"
    " stream_pos, state_before, state_after, client, redacted_by, txn_id, device_id, unsigned"
)

_E_COLUMNS = ", ".join(f"e.{column.strip()}" for column in _COLUMNS.split(","))


def _row(row: Sequence[Any]) -> EventRow:
    # The columns of _COLUMNS, in order; the table is STRICT, so SQLite already gives
    # each one its type (INTEGER -> int, TEXT -> str, BLOB -> bytes).
    return EventRow(*row)


@dataclass(frozen=True)
class NewEvent:
    event_id: str
    room_id: str
    type: str
    state_key: str | None
    sender: str
    origin_server_ts: int
    depth: int
    stream_pos: int
    state_before: int | None
    state_after: int | None
    pdu: bytes
    client: bytes
    unsigned: bytes
    membership: str | None
    relates_to: str | None
    rel_type: str | None
    txn_id: str | None
    device_id: str | None


def insert(conn: apsw.Connection, event: NewEvent) -> int:
    conn.execute(
        "INSERT INTO events (event_id, room_id, type, state_key, sender, origin_server_ts,"
        " depth, stream_pos, state_before, state_after, pdu, client, unsigned, membership,"
        " relates_to, rel_type, txn_id, device_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.event_id,
            event.room_id,
            event.type,
            event.state_key,
            event.sender,
            event.origin_server_ts,
            event.depth,
            event.stream_pos,
            event.state_before,
            event.state_after,
            event.pdu,
            event.client,
            event.unsigned,
            event.membership,
            event.relates_to,
            event.rel_type,
            event.txn_id,
            event.device_id,
        ),
    )
    return conn.last_insert_rowid()


def get(conn: apsw.Connection, event_id: str) -> EventRow | None:
    for row in conn.execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id,)):
        return _row(row)
    return None


def get_by_nids(conn: apsw.Connection, nids: Iterable[int]) -> dict[int, EventRow]:
    wanted = list(nids)
    if not wanted:
        return {}
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE event_nid IN (SELECT value FROM json_each(?))",
        (_json_list(wanted),),
    )
    return {int(row[0]): _row(row) for row in rows}


def current_state_rows(
    conn: apsw.Connection, room_id: str, members: Iterable[str] | None = None
) -> list[EventRow]:
    """The events holding the room's current state: everything but memberships, or
    (with `members`) the memberships of those users. One statement, where the state
    entries and then their events took two."""
    if members is None:
        where = "type != 'm.room.member'"
        params: tuple[object, ...] = (room_id,)
    else:
        where = "type = 'm.room.member' AND state_key IN (SELECT value FROM json_each(?))"
        params = (room_id, _json_list(list(members)))
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE event_nid IN"
            f" (SELECT event_nid FROM current_state WHERE room_id = ? AND {where})",
            params,
        )
    ]


def get_many(conn: apsw.Connection, event_ids: Iterable[str]) -> dict[str, EventRow]:
    wanted = list(event_ids)
    if not wanted:
        return {}
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
        (_json_list(wanted),),
    )
    return {str(row[1]): _row(row) for row in rows}


def get_pdu(conn: apsw.Connection, event_nid: int) -> bytes | None:
    for (pdu,) in conn.execute("SELECT pdu FROM events WHERE event_nid = ?", (event_nid,)):
        return bytes(pdu)
    return None


def get_pdus(conn: apsw.Connection, event_ids: Iterable[str]) -> dict[str, bytes]:
    wanted = list(event_ids)
    if not wanted:
        return {}
    return {
        str(event_id): bytes(pdu)
        for event_id, pdu in conn.execute(
            "SELECT event_id, pdu FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
            (_json_list(wanted),),
        )
    }


def depths(conn: apsw.Connection, event_ids: Iterable[str]) -> dict[str, int]:
    wanted = list(event_ids)
    return {
        str(event_id): int(depth)
        for event_id, depth in conn.execute(
            "SELECT event_id, depth FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
            (_json_list(wanted),),
        )
    }


def room_timeline(
    conn: apsw.Connection,
    room_id: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int,
    backwards: bool,
) -> list[EventRow]:
    """Events of a room between stream positions (exclusive), newest first if backwards."""
    key = ("room_timeline", room_id, before, after, limit, backwards)
    # A new list each time: the rows are frozen and shared, the list is the caller's.
    return list(
        snapshot.once(
            conn, key, lambda: tuple(_room_timeline(conn, room_id, before, after, limit, backwards))
        )
    )


def _room_timeline(
    conn: apsw.Connection,
    room_id: str,
    before: int | None,
    after: int | None,
    limit: int,
    backwards: bool,
) -> list[EventRow]:
    clauses = ["room_id = ?"]
    params: list[object] = [room_id]
    if before is not None:
        clauses.append("stream_pos < ?")
        params.append(before)
    if after is not None:
        clauses.append("stream_pos > ?")
        params.append(after)
    order = "DESC" if backwards else "ASC"
    params.append(limit)
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)}"
            f" ORDER BY stream_pos {order} LIMIT ?",
            params,
        )
    ]


def newest_in_rooms(
    conn: apsw.Connection, room_ids: Collection[str], *, before: int, limit: int
) -> dict[str, list[EventRow]]:
    """room_timeline(before=before, limit=limit, backwards=True) of many rooms in one
    statement (rooms without events are left out)."""
    found: dict[str, list[EventRow]] = {}
    for row in conn.execute(
        f"SELECT {_E_COLUMNS} FROM json_each(?1) AS r JOIN events AS e ON e.event_nid IN ("
        " SELECT event_nid FROM events WHERE room_id = r.value AND stream_pos < ?2"
        " ORDER BY stream_pos DESC LIMIT ?3) ORDER BY e.room_id, e.stream_pos DESC",
        (_json_list(sorted(room_ids)), before, limit),
    ):
        event = _row(row)
        found.setdefault(event.room_id, []).append(event)
    return found


def set_redacted(
    conn: apsw.Connection,
    event_nid: int,
    redacted_by: str,
    pdu: bytes,
    client: bytes,
    unsigned: bytes,
) -> None:
    conn.execute(
        "UPDATE events SET redacted_by = ?, pdu = ?, client = ?, unsigned = ? WHERE event_nid = ?",
        (redacted_by, pdu, client, unsigned, event_nid),
    )


def txn_event(conn: apsw.Connection, user_id: str, device_id: str, txn_id: str) -> str | None:
    for (event_id,) in conn.execute(
        "SELECT event_id FROM event_txns WHERE user_id = ? AND device_id = ? AND txn_id = ?",
        (user_id, device_id, txn_id),
    ):
        return str(event_id)
    return None


def record_txn(
    conn: apsw.Connection,
    user_id: str,
    device_id: str,
    txn_id: str,
    room_id: str,
    event_id: str,
    now: int,
) -> None:
    conn.execute(
        "INSERT INTO event_txns (user_id, device_id, txn_id, room_id, event_id, created_ts)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, device_id, txn_id, room_id, event_id, now),
    )


def forward_extremities(conn: apsw.Connection, room_id: str) -> dict[str, int | None]:
    """The room's forward extremities and their depths (None: not known, look it up)."""
    return {
        str(event_id): None if depth is None else int(depth)
        for event_id, depth in conn.execute(
            "SELECT event_id, depth FROM forward_extremities WHERE room_id = ?", (room_id,)
        )
    }


def set_forward_extremities(
    conn: apsw.Connection, room_id: str, extremities: Mapping[str, int]
) -> None:
    """The room's forward extremities are now these events (event ID -> depth)."""
    conn.execute("DELETE FROM forward_extremities WHERE room_id = ?", (room_id,))
    conn.executemany(
        "INSERT INTO forward_extremities (room_id, event_id, depth) VALUES (?, ?, ?)",
        [(room_id, event_id, depth) for event_id, depth in extremities.items()],
    )


def _json_list(values: Sequence[object]) -> bytes:
    # One bound JSON array instead of a variable number of placeholders keeps a single
    # cached statement for any list length.
    return msgspec.json.encode(values)


def pdus_by_nid(conn: apsw.Connection, nids: Iterable[int]) -> dict[int, tuple[str, bytes]]:
    """event_nid -> (event_id, pdu JSON)."""
    wanted = list(nids)
    if not wanted:
        return {}
    return {
        int(nid): (str(event_id), bytes(pdu))
        for nid, event_id, pdu in conn.execute(
            "SELECT event_nid, event_id, pdu FROM events"
            " WHERE event_nid IN (SELECT value FROM json_each(?))",
            (_json_list(wanted),),
        )
    }


def set_state_after(conn: apsw.Connection, event_nid: int, group_nid: int) -> None:
    conn.execute("UPDATE events SET state_after = ? WHERE event_nid = ?", (group_nid, event_nid))


def membership_of_event(conn: apsw.Connection, event_nid: int) -> str | None:
    for (membership,) in conn.execute(
        "SELECT membership FROM events WHERE event_nid = ?", (event_nid,)
    ):
        return None if membership is None else str(membership)
    return None


def ever_joined(conn: apsw.Connection, user_id: str, room_id: str) -> bool:
    """Whether the user's membership in the room was ever `join`."""
    return (
        conn.execute(
            "SELECT 1 FROM events WHERE room_id = ? AND type = 'm.room.member'"
            " AND state_key = ? AND membership = 'join' LIMIT 1",
            (room_id, user_id),
        ).fetchone()
        is not None
    )
