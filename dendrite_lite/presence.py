"""Presence: https://spec.matrix.org/latest/client-server-api/#presence

Only changes of state (online, unavailable, offline, or the status message) are written
and fanned out; when a user was last active is kept in memory, from their syncs, so a
syncing client does not cause a write every time. A user who stops syncing goes offline
after `offline_after_ms`.
"""

from __future__ import annotations

import logging
from typing import Any

import apsw

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.config import PresenceConfig
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, not_found
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import presence, rooms, streams, users
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.presence import PresenceRow

log = logging.getLogger(__name__)

STATES = ("online", "unavailable", "offline")
CURRENTLY_ACTIVE_MS = 60_000
MAX_STATUS_MSG = 1024


class Presence:
    def __init__(self, db: Database, notifier: Notifier, config: PresenceConfig) -> None:
        self.db = db
        self.notifier = notifier
        self.config = config
        self._last_seen: dict[str, int] = {}
        # The state last stored per user (every change goes through _store).
        self._states: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def event(self, row: PresenceRow, now: int) -> dict[str, Any]:
        last_active = max(row.last_active_ts, self._last_seen.get(row.user_id, 0))
        content: dict[str, Any] = {
            "presence": row.state,
            "last_active_ago": max(0, now - last_active),
            "currently_active": row.state == "online" and now - last_active < CURRENTLY_ACTIVE_MS,
        }
        if row.status_msg is not None:
            content["status_msg"] = row.status_msg
        return {"type": "m.presence", "sender": row.user_id, "content": content}

    async def _store(self, row: PresenceRow) -> None:
        def store(conn: apsw.Connection) -> tuple[int, list[str]]:
            position = streams.next_position(conn)
            presence.upsert(conn, row, position)
            return position, presence.sharing_users(conn, row.user_id)

        position, audience = await self.db.write(store)
        self._states[row.user_id] = row.state
        self.notifier.notify(audience, position)

    async def set_status(
        self, requester: Requester, user_id: str, state: str, status_msg: str | None
    ) -> None:
        """PUT /presence/{userId}/status"""
        if user_id != requester.user_id:
            raise forbidden("Cannot set the presence of another user")
        if state not in STATES:
            raise MatrixError(400, ErrCode.INVALID_PARAM, f"Unknown presence {state!r}")
        if status_msg is not None and len(status_msg) > MAX_STATUS_MSG:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "status_msg is too long")
        if not self.enabled:
            return
        now = now_ms()
        self._last_seen[user_id] = now
        await self._store(PresenceRow(user_id, state, status_msg, now, state == "online"))

    async def get_status(self, requester: Requester, user_id: str) -> dict[str, Any]:
        """GET /presence/{userId}/status"""

        def read(conn: apsw.Connection) -> tuple[bool, bool, PresenceRow | None]:
            exists = users.exists(conn, user_id)
            allowed = user_id == requester.user_id or rooms.share_a_room(
                conn, requester.user_id, user_id
            )
            return exists, allowed, presence.get(conn, user_id)

        exists, allowed, row = await self.db.read(read)
        if not exists:
            raise not_found("Unknown user")
        if not allowed:
            raise forbidden("You do not share a room with this user")
        if row is None or not self.enabled:
            return {"presence": "offline"}
        content: dict[str, Any] = self.event(row, now_ms())["content"]
        return content

    async def on_sync(self, user_id: str, set_presence: str) -> None:
        """A sync is activity: mark the user online (or unavailable) if they were not."""
        if not self.enabled or set_presence == "offline":
            return
        now = now_ms()
        self._last_seen[user_id] = now
        # Every sync passes here: the state is remembered (all changes go through
        # _store) so that a client polling again costs no database hop.
        if self._states.get(user_id) == set_presence:
            return
        row = await self.db.read(lambda conn: presence.get(conn, user_id))
        if row is not None and row.state == set_presence:
            self._states[user_id] = row.state
            return
        status_msg = row.status_msg if row is not None else None
        await self._store(PresenceRow(user_id, set_presence, status_msg, now, True))

    async def expire_idle(self) -> None:
        """Users who stopped syncing go offline."""
        if not self.enabled:
            return
        now = now_ms()
        cutoff = now - self.config.offline_after_ms
        stale = await self.db.read(lambda conn: presence.stale_online(conn, cutoff))
        for row in stale:
            if self._last_seen.get(row.user_id, 0) >= cutoff:
                continue
            self._last_seen.pop(row.user_id, None)
            await self._store(
                PresenceRow(row.user_id, "offline", row.status_msg, row.last_active_ts, False)
            )
