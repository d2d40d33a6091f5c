"""The per-room parts of a /sync response: joined, invited, knocked and left rooms.

https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3sync
Everything here runs inside one read unit, against one snapshot and one upper stream
position (`now`), so a sync never shows half of a write.

A room is either *continued* (the client had it at `since`: the user was joined then
and throughout, so the timeline and the state are deltas from `since`) or *whole*
(initial sync, `full_state`, or a room new to the client: full state). `full_state`
keeps the timeline a delta from `since`, as the spec asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import apsw
import msgspec

from dendrite_lite.filters import Filter, RoomEventFilter, matches, type_allowed
from dendrite_lite.rooms import client_format
from dendrite_lite.rooms.aggregations import filter_related, serve_events
from dendrite_lite.rooms.reading import make_token
from dendrite_lite.rooms.receipts import receipt_event
from dendrite_lite.rooms.visibility import Viewer, VisibilityChecker, viewer
from dendrite_lite.storage import (
    account_data,
    events,
    notifications,
    receipts,
    room_state,
    streams,
)
from dendrite_lite.storage.events import EventRow
from dendrite_lite.storage.room_state import StateKey, StateMap
from dendrite_lite.sync.lazy_members import SentMembers
from dendrite_lite.sync.shaping import Shaper
from dendrite_lite.sync.whole_rooms import (
    ABSENT,
    PRESENT,
    WholeRoom,
    WholeRooms,
    first_heroes,
    named_rooms,
)

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 1000
MAX_SCAN = 2000
MEMBER = "m.room.member"
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
    ignored: frozenset[str] = frozenset()
    use_state_after: bool = False

    @property
    def device(self) -> tuple[str, str]:
        return (self.user_id, self.device_id)

    @property
    def whole(self) -> bool:
        """Every room is sent whole (initial sync or full_state)."""
        return self.since is None or self.full_state


@dataclass
class TypingView:
    """What a sync needs of the typing notifications (rooms/typing_notifications.py)."""

    since_serial: int | None  # None: send every room's current typers
    typing_in: Callable[[str], list[str]]
    changed_since: Callable[[str, int], bool]
    rooms_changed_since: Callable[[int], set[str] | None]


@dataclass
class Context:
    conn: apsw.Connection
    window: Window
    shaper: Shaper
    sent_members: SentMembers
    typing: TypingView
    # (room_id, type, content) of the account data changed in the window
    account_data: list[tuple[str, str, bytes]]
    _all_account_data: list[tuple[str, str, bytes]] | None = field(default=None, init=False)
    _unread: dict[str, notifications.ThreadCounts] | None = field(default=None, init=False)
    # The rooms this sync serves, when it knows them to be few (incremental).
    served_rooms: list[str] | None = field(default=None, init=False)
    # The joined rooms sent whole that are new to the client, read together.
    whole_rooms: WholeRooms | None = field(default=None, init=False)

    def _counts(self, room_id: str) -> notifications.ThreadCounts:
        """The room's unread counts per thread (push/hook.py keeps them in the send
        path), read once per sync for every room served."""
        if self._unread is None:
            self._unread = notifications.unread_by_thread(
                self.conn, self.window.user_id, self.served_rooms
            )
        return self._unread.get(room_id, {})

    def unread_notifications(self, room_id: str) -> dict[str, Any]:
        """`unread_notifications`, and with the timeline filter's
        `unread_thread_notifications` (MSC3773) the main timeline's counts there and each
        thread's in `unread_thread_notifications`."""
        counts = self._counts(room_id)
        if not self.window.filter.room.timeline.unread_thread_notifications:
            return {
                "unread_notifications": {
                    "highlight_count": sum(h for _, h in counts.values()),
                    "notification_count": sum(n for n, _ in counts.values()),
                }
            }
        main_n, main_h = counts.get(notifications.MAIN, (0, 0))
        return {
            "unread_notifications": {"highlight_count": main_h, "notification_count": main_n},
            "unread_thread_notifications": {
                thread: {"highlight_count": h, "notification_count": n}
                for thread, (n, h) in sorted(counts.items())
                if thread != notifications.MAIN
            },
        }

    def room_account_data(self, room_id: str, everything: bool) -> list[msgspec.Raw]:
        af = self.window.filter.room.account_data
        if not _room_allowed(af, room_id):
            return []
        source = self.account_data
        if everything and not self.window.whole:
            if self._all_account_data is None:
                self._all_account_data = account_data.changed_since(
                    self.conn, self.window.user_id, 0
                )
            source = self._all_account_data
        return [
            account_data_event(type_, content)
            for room, type_, content in source
            if room == room_id and type_allowed(af, type_)
        ]


def _room_allowed(f: RoomEventFilter, room_id: str) -> bool:
    return room_id not in f.not_rooms and (f.rooms is None or room_id in f.rooms)


# -- the timeline ----------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    rows: list[EventRow]
    limited: bool
    # State events in the window that the timeline filter left out: they still change
    # the state the client must know.
    skipped: list[EventRow]


def _related(conn: apsw.Connection, f: RoomEventFilter, rows: list[EventRow]) -> set[str] | None:
    """The rows passing `related_by_senders`/`related_by_rel_types` (None: no such filter)."""
    if not f.related_by_senders and not f.related_by_rel_types:
        return None
    kept = filter_related(conn, rows, f.related_by_senders, f.related_by_rel_types)
    return {row.event_id for row in kept}


def timeline_limit(f: RoomEventFilter) -> int:
    return min(f.limit if f.limit is not None else DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT)


def timeline(
    conn: apsw.Connection,
    room_id: str,
    after: int | None,
    upto: int,
    f: RoomEventFilter,
    checker: VisibilityChecker | None = None,
    ignored: frozenset[str] = frozenset(),
    newest: list[EventRow] | None = None,
) -> Timeline:
    """The newest events in (after, upto], oldest first, and whether the window was cut.

    `checker` (a VisibilityChecker) applies history visibility; it is needed only where
    the user was not joined for the whole window. Message events from ignored users are
    left out; their state events are not (ignore_users module). `newest`: the room's
    newest `timeline_limit(f) + 1` events up to `upto`, newest first, when read
    beforehand (the whole window only: `after` None).
    """
    limit = timeline_limit(f)
    picked: list[EventRow] = []
    skipped: list[EventRow] = []
    cursor = upto
    scanned = 0
    limited = False
    while scanned < MAX_SCAN:
        if newest is not None and after is None and cursor == upto:
            batch = newest
        else:
            batch = events.room_timeline(
                conn, room_id, before=cursor + 1, after=after, limit=limit + 1, backwards=True
            )
        if not batch:
            break
        related = _related(conn, f, batch)
        for row in batch:
            scanned += 1
            cursor = row.stream_pos - 1
            if checker is not None and not checker.can_see(row):
                continue
            if row.state_key is None and row.sender in ignored:
                continue
            if not matches(f, row) or (related is not None and row.event_id not in related):
                if row.state_key is not None:
                    skipped.append(row)
                continue
            if len(picked) == limit:
                limited = True
                break
            picked.append(row)
        if limited or len(batch) < limit + 1:
            break
    else:
        limited = True
    picked.reverse()
    skipped.reverse()
    return Timeline(picked, limited, skipped)


# -- state -----------------------------------------------------------------------------


def group_at(conn: apsw.Connection, room_id: str, position: int) -> int | None:
    """The room's state group as of a stream position (None: the room did not exist)."""
    row = conn.execute(
        "SELECT state_after FROM events WHERE room_id = ? AND stream_pos <= ?"
        " AND state_after IS NOT NULL ORDER BY stream_pos DESC LIMIT 1",
        (room_id, position),
    ).fetchone()
    return None if row is None else int(row[0])


def _load(conn: apsw.Connection, group: int | None, known: WholeRoom | None = None) -> StateMap:
    if group is None:
        return {}
    if known is not None and known.group == group and known.state is not None:
        return dict(known.state)
    return room_state.state_at(conn, group)


def membership_at(conn: apsw.Connection, room_id: str, user_id: str, position: int) -> str | None:
    group = group_at(conn, room_id, position)
    if group is None:
        return None
    nid = room_state.state_entry_at(conn, group, MEMBER, user_id)
    return None if nid is None else events.membership_of_event(conn, nid)


def joined_throughout(
    conn: apsw.Connection, room_id: str, user_id: str, since: int, upto: int
) -> bool:
    """Joined at `since` and never anything else up to `upto` (profile changes are joins)."""
    if membership_at(conn, room_id, user_id, since) != "join":
        return False
    return (
        conn.execute(
            "SELECT 1 FROM events WHERE room_id = ? AND stream_pos > ? AND stream_pos <= ?"
            " AND type = 'm.room.member' AND state_key = ? AND membership != 'join' LIMIT 1",
            (room_id, since, upto, user_id),
        ).fetchone()
        is None
    )


def _members_changed(conn: apsw.Connection, room_id: str, since: int, upto: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM events WHERE room_id = ? AND stream_pos > ? AND stream_pos <= ?"
            " AND type = 'm.room.member' LIMIT 1",
            (room_id, since, upto),
        ).fetchone()
        is not None
    )


def _state_events(
    ctx: Context,
    room_id: str,
    tl: Timeline,
    *,
    whole: bool,
    since: int | None,
    upto: int,
    wanted_members: Iterable[str],
    known: WholeRoom | None = None,
) -> list[EventRow]:
    """The `state` section (or `state_after` with use_state_after).

    `state`: the state at the start of the timeline; all of it when `whole`, else what
    changed since `since` (nothing unless the timeline was cut or left state events
    out). `state_after`: the same up to the end of the timeline instead.
    With lazy-loading, members are only those of `wanted_members` (the timeline's
    senders, heroes, the user on whole syncs) plus, on a delta, every membership that
    changed in the gap; members the device already has are left out unless
    `include_redundant_members`.
    """
    conn, window = ctx.conn, ctx.window
    sf = window.filter.room.state
    after_mode = window.use_state_after
    rows = tl.rows
    first = rows[0] if rows else None
    group = group_at(conn, room_id, upto) if after_mode or first is None else first.state_before
    wanted: StateMap
    if whole or since is None:
        wanted = _load(conn, group, known)
    elif tl.limited or tl.skipped:
        at_since = _load(conn, group_at(conn, room_id, since))
        wanted = {k: v for k, v in _load(conn, group).items() if at_since.get(k) != v}
        if not after_mode and first is not None:
            # Left out by the filter but after the timeline's start: not in the delta.
            for row in tl.skipped:
                if row.stream_pos > first.stream_pos and row.state_key is not None:
                    wanted[(row.type, row.state_key)] = row.event_nid
    elif after_mode and group is not None:
        # Everything that changed is in the timeline: look those keys up at the end.
        keys = {(r.type, r.state_key) for r in rows if r.state_key is not None}
        wanted = {}
        for type_, state_key in keys:
            nid = room_state.state_entry_at(conn, group, type_, state_key)
            if nid is not None:
                wanted[(type_, state_key)] = nid
    else:
        wanted = {}
    if sf.lazy_load_members:
        wanted = _lazy_members(ctx, room_id, tl, wanted, group, whole, since, wanted_members)
    loaded = events.get_by_nids(conn, wanted.values())
    result = [row for row in loaded.values() if _state_matches(sf, row)]
    result.sort(key=lambda r: r.stream_pos)
    if sf.lazy_load_members:
        sent = {r.state_key: r.event_nid for r in result if r.type == MEMBER and r.state_key}
        sent.update({r.state_key: r.event_nid for r in rows if r.type == MEMBER and r.state_key})
        ctx.sent_members.record(window.device, room_id, sent, window.now)
    return result


def _lazy_members(
    ctx: Context,
    room_id: str,
    tl: Timeline,
    wanted: StateMap,
    group: int | None,
    whole: bool,
    since: int | None,
    wanted_members: Iterable[str],
) -> StateMap:
    conn, window = ctx.conn, ctx.window
    sf = window.filter.room.state
    rows = tl.rows
    needed: dict[str, None] = {}  # ordered set
    for row in rows:
        needed.setdefault(row.sender)
    for user in wanted_members:
        needed.setdefault(user)
    if whole or since is None:
        # Only the members needed, out of the whole state.
        kept = {k: v for k, v in wanted.items() if k[0] != MEMBER or k[1] in needed}
    else:
        # A delta keeps every membership change of the gap (the spec's MUST).
        kept = dict(wanted)
    received = (
        {}
        if whole or since is None or sf.include_redundant_members
        else ctx.sent_members.received(window.device, room_id, since)
    )
    # A member event in the timeline before the member's first event there is known.
    covered: set[str] = set()
    if not window.use_state_after:
        first_sent: dict[str, int] = {}
        for index, row in enumerate(rows):
            first_sent.setdefault(row.sender, index)
            member = row.state_key if row.type == MEMBER else None
            if member is not None and index <= first_sent.get(member, index):
                covered.add(member)
    for user in needed:
        key: StateKey = (MEMBER, user)
        if key in kept or user in covered or group is None:
            continue
        nid = room_state.state_entry_at(conn, group, MEMBER, user)
        if nid is None or received.get(user) == nid:
            continue
        kept[key] = nid
    return kept


def _state_matches(f: RoomEventFilter, row: EventRow) -> bool:
    return matches(
        RoomEventFilter(
            types=f.types,
            not_types=f.not_types,
            senders=f.senders,
            not_senders=f.not_senders,
            rooms=f.rooms,
            not_rooms=f.not_rooms,
        ),
        row,
    )


# -- sections ----------------------------------------------------------------------------


def _serve_timeline(
    ctx: Context,
    tl: Timeline,
    checker: VisibilityChecker | None,
    empty_prev: int,
    childless: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    window = ctx.window
    served = serve_events(
        ctx.conn,
        tl.rows,
        user_id=window.user_id,
        device=window.device,
        checker=checker,
        ignored=window.ignored,
        childless=childless,
    )
    return {
        "events": ctx.shaper.room_events(ctx.conn, tl.rows, served),
        "limited": tl.limited,
        "prev_batch": make_token(tl.rows[0].stream_pos - 1 if tl.rows else empty_prev),
    }


def _serve_state(ctx: Context, rows: list[EventRow]) -> tuple[str, dict[str, Any]]:
    served = [client_format.serve(r) for r in rows]
    key = "state_after" if ctx.window.use_state_after else "state"
    return key, {"events": ctx.shaper.room_events(ctx.conn, rows, served)}


def _checker(
    conn: apsw.Connection, user_id: str, room_id: str, known: WholeRoom | None
) -> VisibilityChecker:
    """History visibility in a room the user is joined to, with what was read of its
    current state group beforehand."""
    if known is None:
        return VisibilityChecker(conn, viewer(conn, user_id, room_id))
    # Rooms are read whole only where the user is joined and has not forgotten them
    # (rooms_section), which is all that viewer() would read.
    checker = VisibilityChecker(conn, Viewer(user_id, "join", None, ever_joined=True))
    if known.visibility is not None:
        checker.know(known.group, known.visibility)
    return checker


def joined_room(
    ctx: Context,
    room_id: str,
    *,
    continued: bool,
    ephemeral: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """The `rooms.join` entry of a room, or None when nothing changed in it.

    `continued`: the client had this room at `since` (the user was joined throughout).
    """
    conn, window = ctx.conn, ctx.window
    rf = window.filter.room
    whole = window.whole or not continued
    # full_state keeps the timeline a delta from `since` for rooms the client has.
    timeline_after = window.since if continued else None
    known = None if continued or ctx.whole_rooms is None else ctx.whole_rooms.get(room_id)
    checker = None if continued else _checker(conn, window.user_id, room_id, known)
    tl = timeline(
        conn,
        room_id,
        timeline_after,
        window.now,
        rf.timeline,
        checker,
        window.ignored,
        None if known is None else known.newest,
    )
    room_account_data = ctx.room_account_data(room_id, everything=not continued)
    nothing = not (tl.rows or tl.skipped or tl.limited or room_account_data or ephemeral)
    if not whole and nothing:
        return None
    room_summary: dict[str, Any] = {}
    if whole or (
        timeline_after is not None and _members_changed(conn, room_id, timeline_after, window.now)
    ):
        room_summary = summary(conn, room_id, window.user_id, known)
    wanted_members = list(room_summary.get("m.heroes", []))
    if whole:
        wanted_members.append(window.user_id)
    state_rows = _state_events(
        ctx,
        room_id,
        tl,
        whole=whole,
        since=timeline_after,
        upto=window.now,
        wanted_members=wanted_members,
        known=known,
    )
    state_key, state = _serve_state(ctx, state_rows)
    return {
        "timeline": _serve_timeline(
            ctx, tl, checker, window.now, frozenset() if known is None else known.childless
        ),
        state_key: state,
        "account_data": {"events": room_account_data},
        "ephemeral": {"events": ephemeral},
        "summary": room_summary,
        **ctx.unread_notifications(room_id),
    }


def left_room(
    ctx: Context, room_id: str, leave_nid: int, leave_pos: int, *, continued: bool
) -> dict[str, Any]:
    """A room the user left (or was kicked or banned from): history up to the leave.

    `continued`: the client had the room at `since` (joined then), so the state is a
    delta. A user who never joined gets no room state, only what history visibility
    lets them see of the timeline. The leave itself is always in the timeline (as in
    Synapse), even where history visibility hides it, as when an invite is rejected:
    without it a client cannot tell why the room moved to `leave`.
    """
    conn, window = ctx.conn, ctx.window
    rf = window.filter.room
    who = viewer(conn, window.user_id, room_id)
    checker = VisibilityChecker(conn, who)
    timeline_after = window.since if window.since is not None and continued else None
    whole = window.whole or not continued
    tl = timeline(conn, room_id, timeline_after, leave_pos, rf.timeline, checker, window.ignored)
    if not any(row.event_nid == leave_nid for row in tl.rows):
        leave = events.get_by_nids(conn, [leave_nid]).get(leave_nid)
        if leave is not None and matches(rf.timeline, leave):
            tl = Timeline([*tl.rows, leave], tl.limited, tl.skipped)
    state_rows: list[EventRow] = []
    if who.ever_joined:
        state_rows = _state_events(
            ctx,
            room_id,
            tl,
            whole=whole,
            since=timeline_after,
            upto=leave_pos,
            wanted_members=[window.user_id] if whole else [],
        )
    state_key, state = _serve_state(ctx, state_rows)
    return {
        "timeline": _serve_timeline(ctx, tl, checker, leave_pos),
        state_key: state,
        "account_data": {"events": ctx.room_account_data(room_id, everything=whole)},
    }


def account_data_event(type_: str, content: bytes) -> msgspec.Raw:
    return msgspec.Raw(b'{"type":' + msgspec.json.encode(type_) + b',"content":' + content + b"}")


def summary(
    conn: apsw.Connection, room_id: str, user_id: str, known: WholeRoom | None = None
) -> dict[str, Any]:
    """The member counts, and heroes when the room has no name or canonical alias to
    show (the spec requires them only then, and with lazy-loading their member events
    go with them): the first members by stream order, joined or invited (else those
    who left or were banned), never the user."""
    counts = room_state.member_counts(conn, room_id) if known is None else known.member_counts
    result: dict[str, Any] = {
        "m.joined_member_count": counts.get("join", 0),
        "m.invited_member_count": counts.get("invite", 0),
    }
    if known.named if known is not None else room_id in named_rooms(conn, [room_id]):
        return result
    heroes = None if known is None else known.heroes
    for memberships in (PRESENT, ABSENT):
        if heroes:
            break
        heroes = first_heroes(conn, [room_id], user_id, memberships).get(room_id, [])
    result["m.heroes"] = heroes
    return result


def stripped_state(
    conn: apsw.Connection, member_event_nid: int, ignored: frozenset[str] = frozenset()
) -> list[dict[str, Any]] | None:
    """Stripped state for an invite or knock: the room as of the membership event.

    None when the membership event is from an ignored user (their invites are not sent).
    """
    member = events.get_by_nids(conn, [member_event_nid]).get(member_event_nid)
    if member is None or member.state_after is None:
        return []
    if member.sender in ignored:
        return None
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


# -- all rooms ---------------------------------------------------------------------------


def _ephemeral(
    ctx: Context, continued_rooms: list[str], new_rooms: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Typing and receipts: changes since `since` in continued rooms, all in new ones."""
    conn, window = ctx.conn, ctx.window
    ef = window.filter.room.ephemeral
    found: dict[str, list[dict[str, Any]]] = {}
    if type_allowed(ef, "m.typing"):
        serial = ctx.typing.since_serial
        fresh = set(new_rooms)
        for room_id in [*continued_rooms, *new_rooms]:
            if not _room_allowed(ef, room_id):
                continue
            typers = ctx.typing.typing_in(room_id)
            if serial is None or room_id in fresh:
                changed = bool(typers)
            else:
                changed = ctx.typing.changed_since(room_id, serial)
            if changed:
                found.setdefault(room_id, []).append(
                    {"type": "m.typing", "content": {"user_ids": typers}}
                )
    if type_allowed(ef, "m.receipt"):
        by_room: dict[str, list[receipts.ReceiptRow]] = {}
        since = 0 if window.since is None or window.full_state else window.since
        batches = [(continued_rooms, since), (new_rooms, 0)]
        for room_ids, after in batches:
            wanted = [r for r in room_ids if _room_allowed(ef, r)]
            for row in receipts.changed_in_rooms(conn, wanted, after, window.now):
                by_room.setdefault(row.room_id, []).append(row)
        for room_id, rows in by_room.items():
            event = receipt_event(rows, window.user_id)
            if event is not None:
                found.setdefault(room_id, []).append(event)
    return found


def _candidate_rooms(ctx: Context, event_rooms: frozenset[str]) -> set[str] | None:
    """Rooms that may have anything new for an incremental sync; None: every room.

    New events, receipts, room account data and typing changes in the window are all
    the reasons a room the client already has can appear; the rooms of a user who sits
    in hundreds of quiet rooms then cost nothing.
    """
    conn, window = ctx.conn, ctx.window
    assert window.since is not None
    serial = ctx.typing.since_serial
    typing = None if serial is None else ctx.typing.rooms_changed_since(serial)
    if typing is None:
        return None
    candidates = typing | event_rooms
    candidates.update(streams.rooms_between(conn, "receipts", window.since, window.now))
    candidates.update(room_id for room_id, _type, _content in ctx.account_data if room_id)
    return candidates


def _memberships(ctx: Context, candidates: set[str] | None) -> list[tuple[str, str, int, int]]:
    """(room_id, membership, event_nid, changed_at) of the rooms this sync looks at:
    all of them, or those whose membership changed in the window plus the candidates."""
    conn, window = ctx.conn, ctx.window
    rf = window.filter.room
    rows: Iterable[Any]
    if candidates is None:
        rows = conn.execute(
            "SELECT room_id, membership, event_nid, stream_pos FROM user_rooms"
            " WHERE user_id = ? AND forgotten = 0",
            (window.user_id,),
        )
    else:
        # Two lookups (the candidates by key, the changes by user_rooms_changes) rather
        # than one OR, which SQLite answers by reading all the user's rows; a room found
        # by both comes once, and in room order as a scan of the key would give.
        found = {
            row[0]: row
            for row in conn.execute(
                "SELECT room_id, membership, event_nid, stream_pos FROM user_rooms"
                " WHERE user_id = ?1 AND forgotten = 0"
                " AND room_id IN (SELECT value FROM json_each(?3))"
                " UNION ALL SELECT room_id, membership, event_nid, stream_pos FROM user_rooms"
                " WHERE user_id = ?1 AND forgotten = 0 AND stream_pos > ?2",
                (window.user_id, window.since, msgspec.json.encode(sorted(candidates))),
            )
        }
        rows = [found[room_id] for room_id in sorted(found)]
    return [
        (str(room_id), str(membership), int(event_nid), int(changed_at))
        for room_id, membership, event_nid, changed_at in rows
        if room_id not in rf.not_rooms and (rf.rooms is None or room_id in rf.rooms)
    ]


def rooms_section(ctx: Context) -> dict[str, dict[str, Any]]:
    conn, window = ctx.conn, ctx.window
    rf = window.filter.room
    sections: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
    since = window.since
    incremental = since is not None and not window.full_state
    event_rooms = (
        streams.rooms_between(conn, "events", since, window.now)
        if since is not None and incremental
        else frozenset()
    )
    memberships = _memberships(ctx, _candidate_rooms(ctx, event_rooms) if incremental else None)
    continued: list[str] = []
    new: list[str] = []
    for room_id, membership, _nid, changed_at in memberships:
        if membership != "join":
            continue
        if since is not None and (
            changed_at <= since
            or joined_throughout(conn, room_id, window.user_id, since, window.now)
        ):
            continued.append(room_id)
        else:
            new.append(room_id)
    if new:
        ctx.whole_rooms = WholeRooms(
            conn, window.user_id, new, window.now, timeline_limit(rf.timeline) + 1
        )
    ephemeral = _ephemeral(ctx, continued, new)
    active: set[str] | None = None
    if incremental:
        # Rooms with anything new; the others need no look at all.
        active = set(event_rooms)
        active.update(room_id for room_id, _type, _content in ctx.account_data if room_id)
        active.update(ephemeral)
    new_set = set(new)
    if active is not None:
        ctx.served_rooms = [r for r in continued if r in active] + new
    for room_id in continued:
        if active is not None and room_id not in active:
            continue
        entry = joined_room(ctx, room_id, continued=True, ephemeral=ephemeral.get(room_id, []))
        if entry is not None:
            sections["join"][room_id] = entry
    for room_id, membership, event_nid, changed_at in memberships:
        changed = since is None or changed_at > since
        if room_id in new_set:
            entry = joined_room(ctx, room_id, continued=False, ephemeral=ephemeral.get(room_id, []))
            assert entry is not None  # a room new to the client is always sent
            sections["join"][room_id] = entry
        elif membership in ("invite", "knock") and (changed or window.full_state):
            stripped = stripped_state(conn, event_nid, window.ignored)
            if stripped is not None:
                key = "invite_state" if membership == "invite" else "knock_state"
                sections[membership][room_id] = {key: {"events": stripped}}
        elif membership in ("leave", "ban") and (
            (since is not None and changed_at > since) or (window.whole and rf.include_leave)
        ):
            was_joined = (
                since is not None and membership_at(conn, room_id, window.user_id, since) == "join"
            )
            sections["leave"][room_id] = left_room(
                ctx, room_id, event_nid, changed_at, continued=was_joined
            )
    return sections
