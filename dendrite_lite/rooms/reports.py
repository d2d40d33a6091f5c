"""Reporting content: https://spec.matrix.org/latest/client-server-api/#reporting-content

Reports are stored for the server's admins (the `reports` table). An event report needs
the reporter joined to the room and able to see the event (the spec's MUST since v1.8);
anything else is 404, so reports reveal nothing the reporter could not see. A room report
needs no membership at all (v1.13).
"""

from __future__ import annotations

import apsw

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import invalid_param, not_found
from dendrite_lite.rooms.visibility import VisibilityChecker, viewer
from dendrite_lite.storage import events, reports, rooms
from dendrite_lite.storage.db import Database

# The score of event reports (removed from the spec in v1.18, still sent by clients).
MIN_SCORE, MAX_SCORE = -100, 0


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def report_event(
        self,
        requester: Requester,
        room_id: str,
        event_id: str,
        reason: str | None,
        score: int | None,
    ) -> int:
        """POST /rooms/{roomId}/report/{eventId}: the new report's ID."""
        if score is not None and not MIN_SCORE <= score <= MAX_SCORE:
            raise invalid_param(f"score must be between {MIN_SCORE} and {MAX_SCORE}")

        def report(conn: apsw.Connection) -> int:
            row = events.get(conn, event_id)
            missing = not_found("The event was not found or you are not joined to the room")
            if row is None or row.room_id != room_id:
                raise missing
            who = viewer(conn, requester.user_id, room_id)
            if who.membership != "join" or not VisibilityChecker(conn, who).can_see(row):
                raise missing
            return reports.insert(
                conn, room_id, event_id, requester.user_id, reason, score, now_ms()
            )

        return await self.db.write(report)

    async def report_room(self, requester: Requester, room_id: str, reason: str) -> int:
        """POST /rooms/{roomId}/report: the new report's ID."""

        def report(conn: apsw.Connection) -> int:
            if rooms.get(conn, room_id) is None:
                raise not_found("The room was not found")
            return reports.insert(conn, room_id, None, requester.user_id, reason, None, now_ms())

        return await self.db.write(report)
