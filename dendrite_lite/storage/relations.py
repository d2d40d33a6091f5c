"""Event relationships: children found through the events table's relates_to/rel_type.

https://spec.matrix.org/latest/client-server-api/#forming-relationships-between-events
A redacted child has lost its `m.relates_to`, so every query here skips redacted children
(the columns keep the relation the event had when it was stored).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import apsw
import msgspec

from dendrite_lite.storage import snapshot
from dendrite_lite.storage.events import _COLUMNS as EVENT_COLUMNS
from dendrite_lite.storage.events import EventRow
from dendrite_lite.storage.events import _row as event_row


@dataclass(frozen=True)
class Child:
    """A child event with its relation. `row.client` and `row.unsigned` are empty when
    the aggregation does not need the child's JSON (see `aggregation_children`)."""

    row: EventRow
    relates_to: str
    rel_type: str

    @property
    def loaded(self) -> bool:
        return bool(self.row.client)


def _json(values: Iterable[str]) -> bytes:
    return msgspec.json.encode(list(values))


# Children of the given events with an aggregated rel_type, plus the edits and references
# of each thread's newest reply (a thread's latest event is served with its own
# aggregations; the other replies only count, so their children are not looked up: a
# thread of 50 replies would otherwise cost 50 more index searches). The JSON is read
# only for edits and for the newest reply of each thread. `newest` is a window over each
# thread, so a thread is read once.
_AGGREGATION_SQL = """
WITH kids AS (
    SELECT event_nid, event_id, relates_to, rel_type, stream_pos,
           MAX(CASE WHEN rel_type = 'm.thread' THEN stream_pos END)
               OVER (PARTITION BY relates_to) AS newest
    FROM events
    WHERE relates_to IN (SELECT value FROM json_each(?1))
      AND rel_type IN ('m.replace', 'm.reference', 'm.thread')
      AND redacted_by IS NULL
      AND sender NOT IN (SELECT value FROM json_each(?2))
),
grandkids AS (
    SELECT event_nid, event_id, relates_to, rel_type, stream_pos, NULL AS newest
    FROM events
    WHERE relates_to IN (
        SELECT event_id FROM kids WHERE rel_type = 'm.thread' AND stream_pos = newest
    )
      AND rel_type IN ('m.replace', 'm.reference')
      AND redacted_by IS NULL
      AND sender NOT IN (SELECT value FROM json_each(?2))
),
wanted AS (
    SELECT * FROM kids UNION ALL SELECT * FROM grandkids
)
SELECT e.event_nid, e.event_id, e.room_id, e.type, e.state_key, e.sender,
       e.origin_server_ts, e.depth, e.stream_pos, e.state_before, e.state_after,
       CASE WHEN w.rel_type = 'm.replace' OR w.stream_pos = w.newest
            THEN e.client ELSE X'' END,
       e.redacted_by, e.txn_id, e.device_id,
       CASE WHEN w.rel_type = 'm.replace' OR w.stream_pos = w.newest
            THEN e.unsigned ELSE X'' END,
       w.relates_to, w.rel_type
FROM wanted w JOIN events e ON e.event_nid = w.event_nid
ORDER BY e.stream_pos
"""


def aggregation_children(
    conn: apsw.Connection, parent_ids: Sequence[str], ignored_senders: Iterable[str] = ()
) -> list[Child]:
    """One query for a whole page: see `_AGGREGATION_SQL`. Oldest first."""
    if not parent_ids:
        return []
    parents, ignored = tuple(parent_ids), tuple(sorted(ignored_senders))

    def read() -> tuple[Child, ...]:
        return tuple(
            Child(event_row(row[:16]), str(row[16]), str(row[17]))
            for row in conn.execute(_AGGREGATION_SQL, (_json(parents), _json(ignored)))
        )

    # A new list each time: the children are frozen and shared, the list is the caller's.
    return list(snapshot.once(conn, ("aggregation_children", parents, ignored), read))


def with_children(conn: apsw.Connection, event_ids: Collection[str]) -> frozenset[str]:
    """Those of the events that have a child of an aggregated rel_type (redacted or not,
    from anyone): aggregation_children finds nothing for the others. Shared by the reads
    of one snapshot (storage/snapshot.py): a big room's message has each woken /sync ask
    it for the same events."""
    wanted = tuple(sorted(event_ids))

    def read() -> frozenset[str]:
        return frozenset(
            str(relates_to)
            for (relates_to,) in conn.execute(
                "SELECT DISTINCT relates_to FROM events WHERE relates_to IN (SELECT value FROM"
                " json_each(?)) AND rel_type IN ('m.replace', 'm.reference', 'm.thread')",
                (_json(wanted),),
            )
        )

    return snapshot.once(conn, ("with_children", wanted), read)


_RELATED_SQL = f"""
WITH RECURSIVE related(event_nid, event_id, depth) AS (
    SELECT NULL, :parent, 0
    UNION
    SELECT e.event_nid, e.event_id, related.depth + 1
    FROM related CROSS JOIN events e ON e.relates_to = related.event_id
    WHERE related.depth < :max_depth
      AND +e.room_id = :room_id
      AND e.redacted_by IS NULL
      AND e.event_id != :parent
      AND (:rel_type IS NULL OR e.rel_type = :rel_type)
      AND (:event_type IS NULL OR e.type = :event_type)
)
SELECT {EVENT_COLUMNS}
FROM (SELECT DISTINCT event_nid AS nid FROM related WHERE depth > 0) AS found
CROSS JOIN events ON events.event_nid = found.nid
WHERE (:before IS NULL OR stream_pos < :before)
  AND (:after IS NULL OR stream_pos > :after)
ORDER BY stream_pos {{order}} LIMIT :limit
"""


def related_events(
    conn: apsw.Connection,
    room_id: str,
    parent_id: str,
    *,
    rel_type: str | None,
    event_type: str | None,
    max_depth: int,
    before: int | None,
    after: int | None,
    limit: int,
    backwards: bool,
) -> list[EventRow]:
    """Events relating to the parent, directly or (max_depth > 1) through children that
    themselves match rel_type and event_type, between stream positions (exclusive)."""
    sql = _RELATED_SQL.format(order="DESC" if backwards else "ASC")
    params = {
        "parent": parent_id,
        "max_depth": max_depth,
        "room_id": room_id,
        "rel_type": rel_type,
        "event_type": event_type,
        "before": before,
        "after": after,
        "limit": limit,
    }
    return [event_row(row) for row in conn.execute(sql, params)]


_PARENTS_SQL = (
    "SELECT DISTINCT c.relates_to FROM events c"
    " JOIN events p ON p.event_id = c.relates_to AND p.room_id = c.room_id"
    " WHERE c.relates_to IN (SELECT value FROM json_each(?1))"
    " AND c.redacted_by IS NULL AND c.rel_type IS NOT NULL"
    " AND (?2 IS NULL OR c.sender IN (SELECT value FROM json_each(?2)))"
    " AND (?3 IS NULL OR c.rel_type IN (SELECT value FROM json_each(?3)))"
)


def parents_with_children(
    conn: apsw.Connection,
    parent_ids: Sequence[str],
    senders: Sequence[str] | None,
    rel_types: Sequence[str] | None,
) -> set[str]:
    """Which of the events have a child (in their room) from one of the senders with one
    of the rel_types (None: any); the `related_by_*` filters."""
    if not parent_ids:
        return set()
    rows = conn.execute(
        _PARENTS_SQL,
        (
            _json(parent_ids),
            None if senders is None else _json(senders),
            None if rel_types is None else _json(rel_types),
        ),
    )
    return {str(event_id) for (event_id,) in rows}


@dataclass(frozen=True)
class Relation:
    room_id: str
    rel_type: str | None
    redacted: bool


def relation_of(conn: apsw.Connection, event_id: str) -> Relation | None:
    """The room and rel_type of a stored event (None: unknown event)."""
    for room_id, rel_type, redacted_by in conn.execute(
        "SELECT room_id, rel_type, redacted_by FROM events WHERE event_id = ?", (event_id,)
    ):
        return Relation(
            str(room_id), None if rel_type is None else str(rel_type), redacted_by is not None
        )
    return None


def parent_of(conn: apsw.Connection, room_id: str, event_id: str) -> tuple[str, str] | None:
    """(relates_to, rel_type) of a stored event of the room, None if it relates to nothing."""
    for relates_to, rel_type in conn.execute(
        "SELECT relates_to, rel_type FROM events WHERE event_id = ? AND room_id = ?",
        (event_id, room_id),
    ):
        if relates_to is None or rel_type is None:
            return None
        return str(relates_to), str(rel_type)
    return None


def annotations_by(
    conn: apsw.Connection, room_id: str, parent_id: str, sender: str, event_type: str
) -> list[bytes]:
    """Client JSON of the sender's unredacted annotations of the parent with that type."""
    return [
        bytes(client)
        for (client,) in conn.execute(
            "SELECT client FROM events WHERE relates_to = ? AND rel_type = 'm.annotation'"
            " AND room_id = ? AND sender = ? AND type = ? AND redacted_by IS NULL",
            (parent_id, room_id, sender, event_type),
        )
    ]
