"""GET /sync: https://spec.matrix.org/latest/client-server-api/#syncing

A sync token is `s<stream position>`: everything up to that position was delivered.
An incremental sync with nothing new waits on the notifier (only commits that concern
this user wake it), then computes once more.
"""

from __future__ import annotations

import time
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.filters import Filter, room_allowed, type_allowed
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms.reading import make_token, parse_token
from dendrite_lite.storage import account_data, streams
from dendrite_lite.storage.db import Database
from dendrite_lite.sync import rooms as room_sections
from dendrite_lite.sync.rooms import Window

MAX_TIMEOUT_MS = 5 * 60 * 1000


class Sync:
    def __init__(self, db: Database, notifier: Notifier) -> None:
        self.db = db
        self.notifier = notifier

    async def sync(
        self,
        requester: Requester,
        *,
        since: str | None,
        timeout_ms: int,
        full_state: bool,
        sync_filter: Filter,
    ) -> dict[str, Any]:
        since_pos = parse_token(since) if since is not None else None
        timeout_s = max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
        deadline = time.monotonic() + timeout_s
        while True:
            response, now, empty = await self.db.read(
                lambda conn: self._compute(conn, requester, since_pos, full_state, sync_filter)
            )
            remaining = deadline - time.monotonic()
            if not empty or since_pos is None or full_state or remaining <= 0:
                return response
            woken = await self.notifier.wait(requester.user_id, remaining, after=now)
            if not woken:
                return response

    def _compute(
        self,
        conn: apsw.Connection,
        requester: Requester,
        since: int | None,
        full_state: bool,
        sync_filter: Filter,
    ) -> tuple[dict[str, Any], int, bool]:
        now = streams.current_position(conn)
        if since is not None and since > now:
            since = now  # a token from the future (restored backup): treat as now
        window = Window(requester.user_id, requester.device_id, since, now, full_state, sync_filter)
        rooms_section = self._rooms(conn, window)
        global_data = [
            room_sections.account_data_event(type_, content)
            for room_id, type_, content in account_data.changed_since(
                conn, requester.user_id, since or 0
            )
            if room_id == "" and type_allowed(sync_filter.account_data, type_)
        ]
        empty = not any(rooms_section.values()) and not global_data
        response: dict[str, Any] = {
            "next_batch": make_token(now),
            "rooms": rooms_section,
            "account_data": {"events": global_data},
            "presence": {"events": []},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
            "device_unused_fallback_key_types": [],
        }
        return response, now, empty

    def _rooms(self, conn: apsw.Connection, window: Window) -> dict[str, dict[str, Any]]:
        rf = window.filter.room
        sections: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        since = window.since
        changed_since = since if since is not None and not window.full_state else None
        active: set[str] | None = None
        if changed_since is not None:
            # Rooms with anything new; the others need no look at all.
            active = {
                str(room_id)
                for (room_id,) in conn.execute(
                    "SELECT DISTINCT room_id FROM events WHERE stream_pos > ? AND stream_pos <= ?",
                    (changed_since, window.now),
                )
            }
            active.update(
                room_id
                for room_id, _type, _content in account_data.changed_since(
                    conn, window.user_id, changed_since
                )
                if room_id
            )
        for room_id, membership, event_nid, changed_at in conn.execute(
            "SELECT room_id, membership, event_nid, stream_pos FROM user_rooms"
            " WHERE user_id = ? AND forgotten = 0 AND stream_pos <= ?",
            (window.user_id, window.now),
        ):
            if not room_allowed(rf, room_id):
                continue
            fresh = changed_since is None or changed_at > changed_since
            if membership == "join":
                if active is not None and room_id not in active and not fresh:
                    continue
                entry = room_sections.joined_room(conn, window, room_id, changed_at)
                if entry is not None:
                    sections["join"][room_id] = entry
            elif membership == "invite" and fresh:
                sections["invite"][room_id] = {
                    "invite_state": {"events": room_sections.stripped_state(conn, event_nid)}
                }
            elif membership == "knock" and fresh:
                sections["knock"][room_id] = {
                    "knock_state": {"events": room_sections.stripped_state(conn, event_nid)}
                }
            elif membership in ("leave", "ban") and (
                (since is None and rf.include_leave) or (since is not None and fresh)
            ):
                sections["leave"][room_id] = room_sections.left_room(
                    conn, window, room_id, changed_at
                )
        return sections


def encode(response: dict[str, Any]) -> bytes:
    return msgspec.json.encode(response)
