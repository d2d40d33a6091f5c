"""GET /sync: https://spec.matrix.org/latest/client-server-api/#syncing

A sync reads one snapshot up to the current stream position (`now`) and answers a token
for it (sync/tokens.py). An incremental sync with nothing new waits on the notifier:
only changes that concern this user wake it, and it then computes once more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import apsw

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.filters import Filter, room_allowed, type_allowed
from dendrite_lite.notifier import Notifier
from dendrite_lite.presence import Presence
from dendrite_lite.rooms.receipts import receipt_event
from dendrite_lite.rooms.typing_notifications import TypingNotifications
from dendrite_lite.storage import account_data, presence, receipts, streams, to_device
from dendrite_lite.storage.db import Database
from dendrite_lite.sync import rooms as room_sections
from dendrite_lite.sync import tokens
from dendrite_lite.sync.rooms import Window
from dendrite_lite.sync.tokens import SyncToken

MAX_TIMEOUT_MS = 5 * 60 * 1000
TO_DEVICE_BATCH = 100


@dataclass(frozen=True)
class _Computed:
    response: dict[str, Any]
    empty: bool
    acknowledged_to_device: bool


class Sync:
    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        typing: TypingNotifications,
        presence_service: Presence,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.typing = typing
        self.presence = presence_service

    async def sync(
        self,
        requester: Requester,
        *,
        since: str | None,
        timeout_ms: int,
        full_state: bool,
        sync_filter: Filter,
        set_presence: str = "online",
    ) -> dict[str, Any]:
        token = tokens.parse(since) if since is not None else None
        await self.presence.on_sync(requester.user_id, set_presence)
        timeout_s = max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
        deadline = time.monotonic() + timeout_s
        while True:
            tick = self.notifier.tick
            computed = await self.db.read(
                lambda conn: self._compute(conn, requester, token, full_state, sync_filter)
            )
            if computed.acknowledged_to_device and token is not None:
                await self._delete_acknowledged(requester, token.to_device_position)
            remaining = deadline - time.monotonic()
            if not computed.empty or token is None or full_state or remaining <= 0:
                return computed.response
            if not await self.notifier.wait(requester.user_id, remaining, after_tick=tick):
                return computed.response

    async def _delete_acknowledged(self, requester: Requester, upto: int) -> None:
        def delete(conn: apsw.Connection) -> None:
            to_device.delete_acknowledged(conn, requester.user_id, requester.device_id, upto)

        await self.db.write(delete)

    def _compute(
        self,
        conn: apsw.Connection,
        requester: Requester,
        token: SyncToken | None,
        full_state: bool,
        sync_filter: Filter,
    ) -> _Computed:
        now = streams.current_position(conn)
        since = None if token is None else min(token.position, now)
        window = Window(requester.user_id, requester.device_id, since, now, full_state, sync_filter)
        typing_serial = self.typing.serial
        rooms_section = self._rooms(conn, window, token)
        global_data = [
            room_sections.account_data_event(type_, content)
            for room_id, type_, content in account_data.changed_since(
                conn, requester.user_id, since or 0
            )
            if room_id == "" and type_allowed(sync_filter.account_data, type_)
        ]
        after = 0 if token is None else min(token.to_device_position, now)
        messages = to_device.pending(
            conn, requester.user_id, requester.device_id, after, now, TO_DEVICE_BATCH
        )
        to_device_upto = None
        if len(messages) == TO_DEVICE_BATCH:
            # Stop at a whole stream position; the next sync continues from there.
            last = messages[-1].stream_pos
            whole = [m for m in messages if m.stream_pos != last] or messages
            messages = whole
            to_device_upto = messages[-1].stream_pos
        acknowledged = token is not None and to_device.has_acknowledged(
            conn, requester.user_id, requester.device_id, min(token.to_device_position, now)
        )
        presence_events = self._presence(conn, window)
        empty = (
            not any(rooms_section.values())
            and not global_data
            and not messages
            and not presence_events
        )
        next_token = SyncToken(now, typing_serial, to_device_upto)
        response: dict[str, Any] = {
            "next_batch": str(next_token),
            "rooms": rooms_section,
            "account_data": {"events": global_data},
            "presence": {"events": presence_events},
            "to_device": {
                "events": [
                    {
                        "sender": m.sender,
                        "type": m.type,
                        "content": room_sections.raw(m.content),
                    }
                    for m in messages
                ]
            },
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
            "device_unused_fallback_key_types": [],
        }
        return _Computed(response, empty, acknowledged)

    def _presence(self, conn: apsw.Connection, window: Window) -> list[dict[str, Any]]:
        pf = window.filter.presence
        if not self.presence.enabled or not type_allowed(pf, "m.presence"):
            return []
        after = window.since or 0
        if window.since is not None and not presence.any_changed(conn, after, window.now):
            return []
        rows = presence.changed_for(conn, window.user_id, after, window.now)
        now = now_ms()
        events = [
            self.presence.event(row, now)
            for row in rows
            if row.user_id not in pf.not_senders
            and (pf.senders is None or row.user_id in pf.senders)
        ]
        return events[: pf.limit] if pf.limit is not None else events

    def _ephemeral(
        self,
        conn: apsw.Connection,
        window: Window,
        token: SyncToken | None,
        room_ids: list[str],
    ) -> dict[str, list[dict[str, Any]]]:
        ef = window.filter.room.ephemeral
        since = window.since
        found: dict[str, list[dict[str, Any]]] = {}
        if type_allowed(ef, "m.typing"):
            for room_id in room_ids:
                typers = self.typing.typing_in(room_id)
                changed = (
                    bool(typers)
                    if token is None or window.full_state
                    else self.typing.changed_since(room_id, token.typing)
                )
                if changed:
                    typing_event = {"type": "m.typing", "content": {"user_ids": typers}}
                    found.setdefault(room_id, []).append(typing_event)
        if type_allowed(ef, "m.receipt"):
            after = 0 if since is None or window.full_state else since
            by_room: dict[str, list[receipts.ReceiptRow]] = {}
            for row in receipts.changed_in_rooms(conn, room_ids, after, window.now):
                by_room.setdefault(row.room_id, []).append(row)
            for room_id, rows in by_room.items():
                event = receipt_event(rows, window.user_id)
                if event is not None:
                    found.setdefault(room_id, []).append(event)
        return found

    def _rooms(
        self, conn: apsw.Connection, window: Window, token: SyncToken | None
    ) -> dict[str, dict[str, Any]]:
        rf = window.filter.room
        sections: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        since = window.since
        changed_since = since if since is not None and not window.full_state else None
        memberships = [
            (str(room_id), str(membership), int(event_nid), int(changed_at))
            for room_id, membership, event_nid, changed_at in conn.execute(
                "SELECT room_id, membership, event_nid, stream_pos FROM user_rooms"
                " WHERE user_id = ? AND forgotten = 0",
                (window.user_id,),
            )
            if room_allowed(rf, room_id)
        ]
        joined = [room_id for room_id, membership, _, _ in memberships if membership == "join"]
        ephemeral = self._ephemeral(conn, window, token, joined)
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
            active.update(ephemeral)
        for room_id, membership, event_nid, changed_at in memberships:
            fresh = changed_since is None or changed_at > changed_since
            if membership == "join":
                if active is not None and room_id not in active and not fresh:
                    continue
                entry = room_sections.joined_room(
                    conn, window, room_id, changed_at, ephemeral.get(room_id, [])
                )
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
