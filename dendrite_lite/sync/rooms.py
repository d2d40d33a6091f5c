"""The per-room parts of a /sync response: joined, invited, knocked and left rooms.

https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3sync
Everything here runs inside one read unit, against one snapshot and one upper stream
position (`now`), so a sync never shows half of a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.filters import Filter, RoomEventFilter, matches, type_allowed
from dendrite_lite.rooms import client_format
from dendrite_lite.rooms.aggregations import serve_events
from dendrite_lite.rooms.reading import make_token
from dendrite_lite.rooms.visibility import VisibilityChecker, viewer
from dendrite_lite.storage import account_data, events, room_state
from dendrite_lite.storage.events import EventRow
from dendrite_lite.storage.room_state import StateMap

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 1000
MAX_SCAN = 2000
HEROES = 5
# Stripped state given with invites and knocks (spec: "Stripped state").
STRIPPED_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.encryption",
)


@dataclass(frozen=True)
class Window:
    """Sync from `since` (None: initial) up to `now`, for one user and device."""

    user_id: str
    device_id: str
    since: int | None
    now: int
    full_state: bool
    filter: Filter

    @property
    def device(self) -> tuple[str, str]:
        return (self.user_id, self.device_id)


def timeline(
    conn: apsw.Connection,
    room_id: str,
    after: int | None,
    upto: int,
    f: RoomEventFilter,
    checker: VisibilityChecker | None = None,
) -> tuple[list[EventRow], bool]:
    """The newest events in (after, upto], oldest first, and whether the window was cut.

    `checker` applies history visibility; it is needed only where the user was not
    joined for the whole window (initial syncs, new joins, rooms left).
    """
    limit = min(f.limit if f.limit is not None else DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT)
    picked: list[EventRow] = []
    cursor = upto
    scanned = 0
    limited = False
    while scanned < MAX_SCAN:
        batch = events.room_timeline(
            conn, room_id, before=cursor + 1, after=after, limit=limit + 1, backwards=True
        )
        if not batch:
            break
        for row in batch:
            scanned += 1
            cursor = row.stream_pos - 1
            if matches(f, row) and (checker is None or checker.can_see(row)):
                if len(picked) == limit:
                    limited = True
                    break
                picked.append(row)
        if limited or len(batch) < limit + 1:
            break
    else:
        limited = True
    picked.reverse()
    return picked, limited


def state_at_position(conn: apsw.Connection, room_id: str, position: int) -> StateMap:
    row = conn.execute(
        "SELECT state_after FROM events WHERE room_id = ? AND stream_pos <= ?"
        " AND state_after IS NOT NULL ORDER BY stream_pos DESC LIMIT 1",
        (room_id, position),
    ).fetchone()
    if row is None:
        return {}
    return room_state.state_at(conn, int(row[0]))


def _state_before(
    conn: apsw.Connection, room_id: str, first: EventRow | None, upto: int
) -> StateMap:
    if first is not None and first.state_before is not None:
        return room_state.state_at(conn, first.state_before)
    if first is not None:
        return {}
    return state_at_position(conn, room_id, upto)


def joined_room(
    conn: apsw.Connection,
    window: Window,
    room_id: str,
    joined_at: int,
    ephemeral: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """The `rooms.join` entry of a room, or None when nothing changed in it."""
    rf = window.filter.room
    incremental = window.since is not None and not window.full_state and joined_at <= window.since
    after = window.since if incremental else None
    checker = (
        None if incremental else VisibilityChecker(conn, viewer(conn, window.user_id, room_id))
    )
    rows, limited = timeline(conn, room_id, after, window.now, rf.timeline, checker)
    room_account_data = _room_account_data(conn, window, room_id, incremental)
    if incremental and not rows and not room_account_data and not ephemeral:
        return None
    state_rows = _state_for(conn, window, room_id, rows, limited, incremental)
    return {
        "timeline": {
            "events": serve_events(
                conn, rows, user_id=window.user_id, device=window.device, checker=checker
            ),
            "limited": limited,
            "prev_batch": make_token(rows[0].stream_pos - 1 if rows else window.now),
        },
        "state": {"events": [client_format.serve(r) for r in state_rows]},
        "account_data": {"events": room_account_data},
        "ephemeral": {"events": ephemeral},
        "summary": summary(conn, room_id, window.user_id),
        "unread_notifications": {"highlight_count": 0, "notification_count": 0},
    }


def _state_for(
    conn: apsw.Connection,
    window: Window,
    room_id: str,
    rows: list[EventRow],
    limited: bool,
    incremental: bool,
) -> list[EventRow]:
    """State up to the start of the timeline (only what changed, on incremental syncs)."""
    sf = window.filter.room.state
    first = rows[0] if rows else None
    if incremental and not limited:
        wanted: StateMap = {}
    else:
        at_start = _state_before(conn, room_id, first, window.now)
        if incremental:
            assert window.since is not None
            at_since = state_at_position(conn, room_id, window.since)
            wanted = {k: v for k, v in at_start.items() if at_since.get(k) != v}
        else:
            wanted = at_start
    if sf.lazy_load_members:
        senders = {r.sender for r in rows}
        senders.add(window.user_id)
        in_timeline = {(r.type, r.state_key) for r in rows if r.state_key is not None}
        wanted = {
            key: nid
            for key, nid in wanted.items()
            if key[0] != "m.room.member" or key[1] in senders
        }
        if first is not None and first.state_before is not None:
            for sender in senders:
                key = ("m.room.member", sender)
                if key in wanted or key in in_timeline:
                    continue
                nid = room_state.state_entry_at(conn, first.state_before, *key)
                if nid is not None and (incremental or sf.include_redundant_members):
                    wanted[key] = nid
    loaded = events.get_by_nids(conn, wanted.values())
    result = [row for row in loaded.values() if _state_matches(sf, row)]
    result.sort(key=lambda r: r.stream_pos)
    return result


def _state_matches(f: RoomEventFilter, row: EventRow) -> bool:
    return matches(
        RoomEventFilter(
            types=f.types, not_types=f.not_types, senders=f.senders, not_senders=f.not_senders
        ),
        row,
    )


def _room_account_data(
    conn: apsw.Connection, window: Window, room_id: str, incremental: bool
) -> list[msgspec.Raw]:
    af = window.filter.room.account_data
    since = window.since if incremental and window.since is not None else 0
    return [
        account_data_event(type_, content)
        for room, type_, content in account_data.changed_since(conn, window.user_id, since)
        if room == room_id and type_allowed(af, type_)
    ]


def account_data_event(type_: str, content: bytes) -> msgspec.Raw:
    return msgspec.Raw(b'{"type":' + msgspec.json.encode(type_) + b',"content":' + content + b"}")


def summary(conn: apsw.Connection, room_id: str, user_id: str) -> dict[str, Any]:
    counts = room_state.member_counts(conn, room_id)
    heroes = [
        str(member)
        for (member,) in conn.execute(
            "SELECT state_key FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
            " AND membership IN ('join', 'invite') AND state_key != ? ORDER BY state_key LIMIT ?",
            (room_id, user_id, HEROES),
        )
    ]
    return {
        "m.heroes": heroes,
        "m.joined_member_count": counts.get("join", 0),
        "m.invited_member_count": counts.get("invite", 0),
    }


def stripped_state(conn: apsw.Connection, member_event_nid: int) -> list[dict[str, Any]]:
    """Stripped state for an invite or knock: the room as of the membership event."""
    member = events.get_by_nids(conn, [member_event_nid]).get(member_event_nid)
    if member is None or member.state_after is None:
        return []
    keys = [(t, "") for t in STRIPPED_TYPES]
    nids = [
        nid
        for key in keys
        if (nid := room_state.state_entry_at(conn, member.state_after, *key)) is not None
    ]
    stripped = []
    for row in [*events.get_by_nids(conn, nids).values(), member]:
        event = client_format.decode(row)
        stripped.append(
            {
                "type": event["type"],
                "state_key": event.get("state_key", ""),
                "sender": event["sender"],
                "content": event.get("content", {}),
            }
        )
    return stripped


def left_room(
    conn: apsw.Connection, window: Window, room_id: str, leave_pos: int
) -> dict[str, Any]:
    """A room the user left (or was kicked or banned from): history up to the leave."""
    rf = window.filter.room
    incremental = window.since is not None and not window.full_state
    after = window.since if incremental else None
    checker = VisibilityChecker(conn, viewer(conn, window.user_id, room_id))
    rows, limited = timeline(conn, room_id, after, leave_pos, rf.timeline, checker)
    state_window = Window(
        window.user_id, window.device_id, window.since, leave_pos, window.full_state, window.filter
    )
    state_rows = _state_for(
        conn, state_window, room_id, rows, limited, incremental and window.since is not None
    )
    return {
        "timeline": {
            "events": serve_events(
                conn, rows, user_id=window.user_id, device=window.device, checker=checker
            ),
            "limited": limited,
            "prev_batch": make_token(rows[0].stream_pos - 1 if rows else leave_pos),
        },
        "state": {"events": [client_format.serve(r) for r in state_rows]},
        "account_data": {"events": _room_account_data(conn, window, room_id, incremental)},
    }


def raw(content: bytes) -> msgspec.Raw:
    return msgspec.Raw(content)
