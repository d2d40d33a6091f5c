"""Reading rooms: single events, state, members, /messages and /context.

https://spec.matrix.org/latest/client-server-api/#getting-events-for-a-room
Every path applies history visibility (rooms/visibility.py) inside one read unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import forbidden, not_found
from dendrite_lite.filters import RoomEventFilter, matches
from dendrite_lite.rooms import aggregations, client_format
from dendrite_lite.rooms.visibility import Viewer, VisibilityChecker, viewer
from dendrite_lite.storage import events, room_state, streams
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.events import EventRow
from dendrite_lite.sync import tokens as sync_tokens

MAX_LIMIT = 1000
# How many rows one /messages call may look through to fill a filtered page.
MAX_SCAN = 5000


def parse_token(token: str) -> int:
    """Pagination tokens are `s<stream position>`; a sync token (next_batch) works too."""
    return sync_tokens.parse(token).position


def make_token(position: int) -> str:
    return f"s{position}"


@dataclass(frozen=True)
class Page:
    chunk: list[msgspec.Raw]
    start: str
    end: str | None
    state: list[msgspec.Raw]


class RoomReading:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _device(requester: Requester) -> tuple[str, str]:
        return (requester.user_id, requester.device_id)

    @staticmethod
    def _state_group_for(conn: apsw.Connection, room_id: str, who: Viewer) -> int | None:
        """The state the viewer may see: now if joined, else as of their last membership."""
        if who.membership == "join":
            row = conn.execute(
                "SELECT state_group FROM rooms WHERE room_id = ?", (room_id,)
            ).fetchone()
            return None if row is None else row[0]
        if who.membership is None:
            return None
        nid = conn.execute(
            "SELECT event_nid FROM user_rooms WHERE user_id = ? AND room_id = ?",
            (who.user_id, room_id),
        ).fetchone()
        if nid is None:
            return None
        member = events.get_by_nids(conn, [int(nid[0])]).get(int(nid[0]))
        return None if member is None else member.state_after

    async def get_event(self, requester: Requester, room_id: str, event_id: str) -> msgspec.Raw:
        def read(conn: apsw.Connection) -> msgspec.Raw:
            row = events.get(conn, event_id)
            if row is None or row.room_id != room_id:
                raise not_found("Event not found")
            checker = VisibilityChecker(conn, viewer(conn, requester.user_id, room_id))
            if not checker.can_see(row):
                raise not_found("Event not found")
            return aggregations.serve_events(
                conn,
                [row],
                user_id=requester.user_id,
                device=self._device(requester),
                checker=checker,
            )[0]

        return await self.db.read(read)

    async def get_state(self, requester: Requester, room_id: str) -> list[msgspec.Raw]:
        def read(conn: apsw.Connection) -> list[msgspec.Raw]:
            group = self._visible_state_group(conn, requester, room_id)
            rows = events.get_by_nids(conn, room_state.state_at(conn, group).values())
            return [client_format.serve(row) for row in sorted(rows.values(), key=_order)]

        return await self.db.read(read)

    async def get_state_event(
        self, requester: Requester, room_id: str, event_type: str, state_key: str
    ) -> EventRow:
        def read(conn: apsw.Connection) -> EventRow:
            group = self._visible_state_group(conn, requester, room_id)
            nid = room_state.state_entry_at(conn, group, event_type, state_key)
            row = events.get_by_nids(conn, [nid]).get(nid) if nid is not None else None
            if row is None:
                raise not_found(f"No {event_type} state with key {state_key!r} in the room")
            return row

        return await self.db.read(read)

    def _visible_state_group(
        self, conn: apsw.Connection, requester: Requester, room_id: str
    ) -> int:
        who = viewer(conn, requester.user_id, room_id)
        group = self._state_group_for(conn, room_id, who)
        if group is None or who.membership in ("invite", "knock"):
            raise forbidden(f"{requester.user_id} is not in room {room_id}")
        return group

    async def members(
        self,
        requester: Requester,
        room_id: str,
        at: str | None,
        membership: str | None,
        not_membership: str | None,
    ) -> list[msgspec.Raw]:
        def read(conn: apsw.Connection) -> list[msgspec.Raw]:
            group = self._visible_state_group(conn, requester, room_id)
            if at is not None:
                cap = parse_token(at)
                who = viewer(conn, requester.user_id, room_id)
                if who.until is not None:
                    cap = min(cap, who.until)
                row = conn.execute(
                    "SELECT state_after FROM events WHERE room_id = ? AND stream_pos <= ?"
                    " AND state_after IS NOT NULL ORDER BY stream_pos DESC LIMIT 1",
                    (room_id, cap),
                ).fetchone()
                if row is None:
                    return []  # the room did not exist yet at that point
                group = int(row[0])
            state = room_state.state_at(conn, group)
            nids = [nid for (t, _k), nid in state.items() if t == "m.room.member"]
            rows = events.get_by_nids(conn, nids).values()
            result = []
            for row in sorted(rows, key=lambda r: r.state_key or ""):
                kind = events.membership_of_event(conn, row.event_nid)
                if membership is not None and kind != membership:
                    continue
                if not_membership is not None and kind == not_membership:
                    continue
                result.append(client_format.serve(row))
            return result

        return await self.db.read(read)

    async def joined_members(self, requester: Requester, room_id: str) -> dict[str, Any]:
        def read(conn: apsw.Connection) -> dict[str, Any]:
            who = viewer(conn, requester.user_id, room_id)
            if who.membership != "join":
                raise forbidden(f"{requester.user_id} is not in room {room_id}")
            joined: dict[str, Any] = {}
            state = room_state.current_state(conn, room_id)
            nids = [nid for (t, _k), nid in state.items() if t == "m.room.member"]
            for row in events.get_by_nids(conn, nids).values():
                content = msgspec.json.decode(row.client).get("content", {})
                if content.get("membership") != "join" or row.state_key is None:
                    continue
                profile: dict[str, str] = {}
                if isinstance(content.get("displayname"), str):
                    profile["display_name"] = content["displayname"]
                if isinstance(content.get("avatar_url"), str):
                    profile["avatar_url"] = content["avatar_url"]
                joined[row.state_key] = profile
            return {"joined": joined}

        return await self.db.read(read)

    async def messages(
        self,
        requester: Requester,
        room_id: str,
        *,
        from_token: str | None,
        to_token: str | None,
        backwards: bool,
        limit: int,
        event_filter: RoomEventFilter,
    ) -> Page:
        limit = max(0, min(limit, MAX_LIMIT))
        start = parse_token(from_token) if from_token is not None else None
        to = parse_token(to_token) if to_token is not None else None

        def read(conn: apsw.Connection) -> Page:
            who = viewer(conn, requester.user_id, room_id)
            # Peeking into world-readable rooms needs no membership.
            if who.membership is None and not _world_readable(conn, room_id):
                raise forbidden(f"{requester.user_id} is not in room {room_id}")
            checker = VisibilityChecker(conn, who)
            position = start
            if position is None:
                position = streams.current_position(conn) if backwards else 0
            if backwards and who.until is not None:
                # A departed user sees nothing after their leave: start there, not at
                # "now", instead of scanning everything since.
                position = min(position, who.until)
            chunk: list[EventRow] = []
            cursor = position
            scanned = 0
            exhausted = False
            while len(chunk) < limit and scanned < MAX_SCAN:
                batch = events.room_timeline(
                    conn,
                    room_id,
                    before=cursor + 1 if backwards else None,
                    after=None if backwards else cursor,
                    limit=max(limit * 2, 20),
                    backwards=backwards,
                )
                if not batch:
                    exhausted = True
                    break
                related = _related_filter(conn, event_filter, batch)
                for row in batch:
                    if to is not None and (
                        row.stream_pos <= to if backwards else row.stream_pos > to
                    ):
                        exhausted = True
                        break
                    cursor = row.stream_pos - 1 if backwards else row.stream_pos
                    scanned += 1
                    if (
                        matches(event_filter, row)
                        and (related is None or row.event_id in related)
                        and checker.can_see(row)
                    ):
                        chunk.append(row)
                        if len(chunk) >= limit:
                            break
                if exhausted:
                    break
            served = aggregations.serve_events(
                conn,
                chunk,
                user_id=requester.user_id,
                device=self._device(requester),
                checker=checker,
            )
            state: list[msgspec.Raw] = []
            if event_filter.lazy_load_members and chunk:
                state = _member_events_for(conn, chunk)
            # No `end` once the timeline is exhausted, as the spec asks.
            end = None if exhausted or limit == 0 else make_token(cursor)
            return Page(served, make_token(position), end, state)

        return await self.db.read(read)

    async def context(
        self,
        requester: Requester,
        room_id: str,
        event_id: str,
        limit: int,
        event_filter: RoomEventFilter,
    ) -> dict[str, Any]:
        limit = max(0, min(limit, MAX_LIMIT))

        def read(conn: apsw.Connection) -> dict[str, Any]:
            row = events.get(conn, event_id)
            if row is None or row.room_id != room_id:
                raise not_found("Event not found")
            who = viewer(conn, requester.user_id, room_id)
            checker = VisibilityChecker(conn, who)
            if not checker.can_see(row):
                raise not_found("Event not found")
            before_n = limit // 2
            after_n = limit - before_n
            earlier = events.room_timeline(
                conn, room_id, before=row.stream_pos, limit=before_n * 4 + 10, backwards=True
            )
            later = events.room_timeline(
                conn, room_id, after=row.stream_pos, limit=after_n * 4 + 10, backwards=False
            )
            related = _related_filter(conn, event_filter, earlier + later)

            def wanted(r: EventRow) -> bool:
                return (
                    matches(event_filter, r)
                    and (related is None or r.event_id in related)
                    and checker.can_see(r)
                )

            before = [r for r in earlier if wanted(r)][:before_n]
            after = [r for r in later if wanted(r)][:after_n]
            state_rows = events.get_by_nids(
                conn,
                room_state.state_at(conn, row.state_before).values() if row.state_before else [],
            )
            state_list = sorted(state_rows.values(), key=_order)
            if event_filter.lazy_load_members:
                senders = {r.sender for r in [row, *before, *after]}
                state_list = [
                    r for r in state_list if r.type != "m.room.member" or r.state_key in senders
                ]
            start_pos = (before[-1].stream_pos if before else row.stream_pos) - 1
            end_pos = after[-1].stream_pos if after else row.stream_pos
            served = aggregations.serve_events(
                conn,
                [row, *before, *after],
                user_id=requester.user_id,
                device=self._device(requester),
                checker=checker,
            )
            return {
                "event": served[0],
                "events_before": served[1 : 1 + len(before)],
                "events_after": served[1 + len(before) :],
                "state": [client_format.serve(r) for r in state_list],
                "start": make_token(start_pos),
                "end": make_token(end_pos),
            }

        return await self.db.read(read)


def _order(row: EventRow) -> int:
    return row.stream_pos


def _related_filter(
    conn: apsw.Connection, event_filter: RoomEventFilter, rows: list[EventRow]
) -> set[str] | None:
    """The rows passing `related_by_senders`/`related_by_rel_types` (None: no such filter),
    in one query for the batch."""
    senders, rel_types = event_filter.related_by_senders, event_filter.related_by_rel_types
    if not senders and not rel_types:
        return None
    return {r.event_id for r in aggregations.filter_related(conn, rows, senders, rel_types)}


def _world_readable(conn: apsw.Connection, room_id: str) -> bool:
    nid = room_state.current_entry(conn, room_id, "m.room.history_visibility", "")
    if nid is None:
        return False
    row = events.get_by_nids(conn, [nid]).get(nid)
    if row is None:
        return False
    content = msgspec.json.decode(row.client).get("content", {})
    return isinstance(content, dict) and content.get("history_visibility") == "world_readable"


def _member_events_for(conn: apsw.Connection, chunk: list[EventRow]) -> list[msgspec.Raw]:
    """Lazy-loaded members: the membership of each sender as of the page's events."""
    wanted: dict[str, int] = {}
    for row in chunk:
        if row.sender in wanted or row.state_before is None:
            continue
        nid = room_state.state_entry_at(conn, row.state_before, "m.room.member", row.sender)
        if nid is None and row.state_after is not None:
            nid = room_state.state_entry_at(conn, row.state_after, "m.room.member", row.sender)
        if nid is not None:
            wanted[row.sender] = nid
    rows = events.get_by_nids(conn, wanted.values())
    return [client_format.serve(rows[nid]) for nid in wanted.values() if nid in rows]
