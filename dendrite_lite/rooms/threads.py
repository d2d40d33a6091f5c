"""GET /rooms/{roomId}/threads: thread roots by their most recent reply.

https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidthreads
Roots come with their bundled aggregations (rooms/aggregations.py: count, latest_event,
current_user_participated). A root sent by an ignored user is served redacted, "to
simulate the same behaviour of a client doing aggregation locally on the thread".
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError, forbidden
from dendrite_lite.events.redaction import redact
from dendrite_lite.rooms.aggregations import ignored_users, serve_events
from dendrite_lite.rooms.pipeline import room_version_of
from dendrite_lite.rooms.visibility import VisibilityChecker, viewer
from dendrite_lite.storage import events, rooms, streams
from dendrite_lite.storage import threads as store
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.events import EventRow

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Thread rows one request may look through to fill a page (roots the user cannot see
# are skipped).
MAX_SCAN = 1000
INCLUDE = frozenset({"all", "participated"})
TOKEN_PREFIX = "t"


def make_token(position: int) -> str:
    return f"{TOKEN_PREFIX}{position}"


def parse_token(token: str) -> int:
    digits = token[len(TOKEN_PREFIX) :] if token.startswith(TOKEN_PREFIX) else ""
    if not digits.isdigit() or len(digits) > 18:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Unknown pagination token")
    return int(digits)


class Threads:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(
        self,
        requester: Requester,
        room_id: str,
        *,
        include: str | None,
        from_token: str | None,
        limit: int | None,
    ) -> dict[str, Any]:
        include = include or "all"
        if include not in INCLUDE:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "include must be 'all' or 'participated'")
        if limit is not None and limit < 1:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "limit must be greater than zero")
        limit = min(DEFAULT_LIMIT if limit is None else limit, MAX_LIMIT)
        before = parse_token(from_token) if from_token is not None else None
        participant = requester.user_id if include == "participated" else None

        def read(conn: apsw.Connection) -> dict[str, Any]:
            room = rooms.get(conn, room_id)
            who = viewer(conn, requester.user_id, room_id)
            if room is None or who.membership is None:
                raise forbidden(f"{requester.user_id} is not in room {room_id}")
            checker = VisibilityChecker(conn, who)
            cursor = streams.current_position(conn) + 1 if before is None else before
            chunk: list[EventRow] = []
            scanned = 0
            more = True
            while more and len(chunk) < limit and scanned < MAX_SCAN:
                need = limit - len(chunk)
                found = store.recent(
                    conn, room_id, before=cursor, limit=need + 1, participant=participant
                )
                more = len(found) > need
                taken = found[:need]
                roots = events.get_many(conn, [root_id for root_id, _ in taken])
                for root_id, position in taken:
                    cursor = position
                    scanned += 1
                    root = roots.get(root_id)
                    if root is not None and checker.can_see(root):
                        chunk.append(root)
            ignored = set(ignored_users(conn, requester.user_id))
            if ignored:
                version = room_version_of(room)
                chunk = [
                    _as_redacted(row, version) if row.sender in ignored else row for row in chunk
                ]
            device = (requester.user_id, requester.device_id)
            answer: dict[str, Any] = {
                "chunk": serve_events(
                    conn, chunk, user_id=requester.user_id, device=device, checker=checker
                )
            }
            if more:
                answer["next_batch"] = make_token(cursor)
            return answer

        return await self.db.read(read)


def _as_redacted(row: EventRow, version: Any) -> EventRow:
    pruned = redact(msgspec.json.decode(row.client), version)
    return msgspec.structs.replace(row, client=msgspec.json.encode(pruned))
