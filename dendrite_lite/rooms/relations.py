"""Event relationships: the /relations API and the checks on sending related events.

https://spec.matrix.org/latest/client-server-api/#forming-relationships-between-events
https://spec.matrix.org/latest/client-server-api/#relationships-api
Bundled aggregations are in rooms/aggregations.py.
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError, not_found
from dendrite_lite.rooms.aggregations import THREAD, serve_events
from dendrite_lite.rooms.reading import make_token, parse_token
from dendrite_lite.rooms.visibility import VisibilityChecker, viewer
from dendrite_lite.storage import events, streams
from dendrite_lite.storage import relations as store
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.events import EventRow

ANNOTATION = "m.annotation"

# `recurse=true` follows relations this deep (the spec asks for at least 3).
RECURSION_DEPTH = 3
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
# How many children one /relations call may look through to fill a page.
MAX_SCAN = 5000


# -- checks when sending ------------------------------------------------------------------


def check_new_relation(
    conn: apsw.Connection, room_id: str, sender: str, event_type: str, content: dict[str, Any]
) -> None:
    """What the spec asks servers to reject of a client's new related event.

    https://spec.matrix.org/latest/client-server-api/#validation-of-mthread-relationships
    https://spec.matrix.org/latest/client-server-api/#avoiding-duplicate-annotations
    Other invalid relations (e.g. someone else's edit) are stored and ignored.
    """
    relates = content.get("m.relates_to")
    if not isinstance(relates, dict):
        return
    parent_id, rel_type = relates.get("event_id"), relates.get("rel_type")
    if not isinstance(parent_id, str) or not isinstance(rel_type, str):
        return
    if rel_type == THREAD:
        parent = store.relation_of(conn, parent_id)
        if (
            parent is not None
            and parent.room_id == room_id
            and parent.rel_type is not None
            and not parent.redacted
        ):
            raise MatrixError(
                400, ErrCode.UNKNOWN, "Cannot start a thread from an event with a relation"
            )
    elif rel_type == ANNOTATION and isinstance(relates.get("key"), str):
        key = relates["key"]
        for raw in store.annotations_by(conn, room_id, parent_id, sender, event_type):
            other = msgspec.json.decode(raw).get("content", {}).get("m.relates_to", {})
            if isinstance(other, dict) and other.get("key") == key:
                raise MatrixError(400, "M_DUPLICATE_ANNOTATION", "You already sent this annotation")


# -- GET /relations -------------------------------------------------------------------------


class Relations:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def children(
        self,
        requester: Requester,
        room_id: str,
        event_id: str,
        *,
        rel_type: str | None,
        event_type: str | None,
        from_token: str | None,
        to_token: str | None,
        limit: int | None,
        backwards: bool,
        recurse: bool | None,
    ) -> dict[str, Any]:
        """GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]"""
        if limit is not None and limit < 0:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "limit must not be negative")
        limit = max(1, min(DEFAULT_LIMIT if limit is None else limit, MAX_LIMIT))
        start = parse_token(from_token) if from_token is not None else None
        to = parse_token(to_token) if to_token is not None else None
        depth = RECURSION_DEPTH if recurse else 1

        def read(conn: apsw.Connection) -> dict[str, Any]:
            parent = events.get(conn, event_id)
            if parent is None or parent.room_id != room_id:
                raise not_found("Event not found")
            checker = VisibilityChecker(conn, viewer(conn, requester.user_id, room_id))
            if not checker.can_see(parent):
                raise not_found("Event not found")
            position = start
            if position is None:
                position = streams.current_position(conn) if backwards else 0
            chunk: list[EventRow] = []
            cursor = position
            scanned = 0
            exhausted = False
            while len(chunk) < limit and scanned < MAX_SCAN and not exhausted:
                want = max(limit * 2, 20)
                batch = store.related_events(
                    conn,
                    room_id,
                    event_id,
                    rel_type=rel_type,
                    event_type=event_type,
                    max_depth=depth,
                    before=cursor + 1 if backwards else None,
                    after=None if backwards else cursor,
                    limit=want,
                    backwards=backwards,
                )
                exhausted = len(batch) < want
                for index, row in enumerate(batch):
                    if to is not None and (
                        row.stream_pos <= to if backwards else row.stream_pos > to
                    ):
                        exhausted = True
                        break
                    cursor = row.stream_pos - 1 if backwards else row.stream_pos
                    scanned += 1
                    if checker.can_see(row):
                        chunk.append(row)
                        if len(chunk) >= limit:
                            # Rows left in this batch: not the end of the results yet.
                            exhausted = exhausted and index == len(batch) - 1
                            break
            device = (requester.user_id, requester.device_id)
            answer: dict[str, Any] = {
                "chunk": serve_events(
                    conn, chunk, user_id=requester.user_id, device=device, checker=checker
                )
            }
            if not exhausted:
                answer["next_batch"] = make_token(cursor)
            if from_token is not None:
                answer["prev_batch"] = from_token
            if recurse is not None:
                answer["recursion_depth"] = depth
            return answer

        return await self.db.read(read)
