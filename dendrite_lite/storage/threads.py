"""Thread roots by their most recent reply (table `threads`, kept by triggers: delta 0008)."""

from __future__ import annotations

import apsw

_LIST_SQL = """
SELECT t.root_id, t.latest_pos FROM threads AS t
WHERE t.room_id = ?1 AND t.latest_pos < ?2
  AND (?3 IS NULL
       OR EXISTS (SELECT 1 FROM events AS r WHERE r.event_id = t.root_id AND r.sender = ?3)
       OR EXISTS (
           SELECT 1 FROM events AS c
           WHERE c.relates_to = t.root_id AND c.rel_type = 'm.thread' AND c.sender = ?3
             AND c.room_id = t.room_id AND c.redacted_by IS NULL))
ORDER BY t.latest_pos DESC
LIMIT ?4
"""


def recent(
    conn: apsw.Connection,
    room_id: str,
    *,
    before: int,
    limit: int,
    participant: str | None = None,
) -> list[tuple[str, int]]:
    """(root event ID, position of the newest reply) of the threads whose newest reply is
    before `before`, newest first; only those `participant` took part in, if given (sent
    the root or a reply: spec, server-side aggregation of m.thread)."""
    return [
        (str(root_id), int(position))
        for root_id, position in conn.execute(_LIST_SQL, (room_id, before, participant, limit))
    ]
