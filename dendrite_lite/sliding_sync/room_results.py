"""One room's entry in a sliding sync response (MSC4186 "Room results").

A room is sent whole (`initial`) the first time a connection sees it, or when the user's
membership turned into a join (an invite accepted, a room re-joined); after that only
what changed since it was last sent: new timeline events, the state keys the window set
(as far as the room config asks for them), name/avatar/heroes/counts when the events
that make them changed. A room with nothing new costs one indexed lookup.

The dict built here uses the unstable field names; api/client/sliding_sync.py renames
the few that the accepted text changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import apsw
import msgspec

from dendrite_lite.clock import now_ms
from dendrite_lite.filters import RoomEventFilter
from dendrite_lite.rooms import client_format
from dendrite_lite.rooms.aggregations import serve_events
from dendrite_lite.rooms.reading import make_token
from dendrite_lite.rooms.visibility import Viewer, VisibilityChecker, viewer
from dendrite_lite.sliding_sync import room_cache
from dendrite_lite.sliding_sync.connections import SentRoom
from dendrite_lite.sliding_sync.required_state import MEMBER, RoomConfig
from dendrite_lite.sliding_sync.room_cache import RoomCache, RoomSnapshot
from dendrite_lite.sliding_sync.room_lists import DirectRooms
from dendrite_lite.storage import events, relations, room_state
from dendrite_lite.storage import sliding_sync as store
from dendrite_lite.storage.events import EventRow
from dendrite_lite.storage.sliding_sync import ListedRoom
from dendrite_lite.sync import rooms as sync_rooms

HEROES = 5
NAME = ("m.room.name", "")
AVATAR = ("m.room.avatar", "")
ALIAS = ("m.room.canonical_alias", "")
# State whose change changes the room's name, avatar, heroes or member counts.
META_TYPES = frozenset({"m.room.name", "m.room.avatar", "m.room.canonical_alias", MEMBER})


@dataclass
class RoomContext:
    """What every room of one response shares: one snapshot, one upper position."""

    conn: apsw.Connection
    user_id: str
    device_id: str
    now: int  # the stream position the response covers
    base: int | None  # the stream position of the request's pos (None: no pos)
    direct: frozenset[str]  # a DirectRooms when it knows m.direct's stream position
    ignored: frozenset[str]
    cache: RoomCache
    # Each room's newest stream position, read for all rooms at once where needed.
    latest: dict[str, int] = field(default_factory=dict)
    # Rooms that had no event after the pos's position, among those the pos checked
    # (the rooms in its lists' windows): nothing to look up for them.
    quiet: frozenset[str] = frozenset()
    now_ts: int = field(default_factory=now_ms)
    # The rooms this response may send (their unread counts are read together).
    candidates: list[str] = field(default_factory=list)
    # Rooms the user read since the pos (their own receipts moved): sent again for their
    # unread counts even with no new event (Element Web's sliding sync shows the
    # server's counts; Element X counts from the receipts extension itself).
    read: frozenset[str] = frozenset()
    _unread: dict[str, tuple[int, int]] | None = None

    def unread(self, room_id: str) -> tuple[int, int]:
        if self._unread is None:
            self._unread = store.unread_counts(self.conn, self.user_id, self.candidates)
        return self._unread.get(room_id, (0, 0))


def dm_changed(ctx: RoomContext, room_id: str, sent: SentRoom) -> bool:
    """Whether the room's is_dm differs from what the connection was told (MSC4186: is_dm
    "must be included in an incremental sync if the DM state changes"). A room loaded
    after a restart does not know what it was told: it counts as changed if m.direct was
    set after the room was last sent (then is_dm is sent again, perhaps needlessly)."""
    if sent.is_dm is not None:
        return sent.is_dm != (room_id in ctx.direct)
    return isinstance(ctx.direct, DirectRooms) and ctx.direct.position > sent.stream_pos


@dataclass(frozen=True)
class RoomUpdate:
    result: dict[str, Any]
    sent: SentRoom
    initial: bool
    timeline_rows: list[EventRow] = field(default_factory=list)
    checker: VisibilityChecker | None = None


def consistent(ctx: RoomContext, row: ListedRoom, config: RoomConfig, sent: SentRoom) -> bool:
    """Whether the connection has the room as this response would send it, but for its
    events: a room the user is in or left, sent with the same membership and config
    (interned: the same object) and the same is_dm."""
    return (
        config is sent.config
        and row.membership == sent.membership
        and row.membership not in ("invite", "knock")
        and not dm_changed(ctx, row.room_id, sent)
    )


def settled(ctx: RoomContext, row: ListedRoom, config: RoomConfig, sent: SentRoom) -> bool:
    """Whether `build` would find nothing to send for the room without looking: a
    consistent room with no event since the pos (`ctx.quiet`). Element X's window grows
    to every room; a long-poll woken by one message in a 500-room account went through
    `_joined` for the other 499 (~2.6 us each, fourteenth session)."""
    return row.room_id in ctx.quiet and consistent(ctx, row, config, sent)


def build(
    ctx: RoomContext, row: ListedRoom, config: RoomConfig, sent: SentRoom | None
) -> RoomUpdate | None:
    """The room's entry, or None when the connection already has all of it."""
    if row.membership in ("invite", "knock"):
        return _invited(ctx, row, config, sent)
    return _joined(ctx, row, config, sent)


def _invited(
    ctx: RoomContext, row: ListedRoom, config: RoomConfig, sent: SentRoom | None
) -> RoomUpdate | None:
    is_dm = row.room_id in ctx.direct
    if (
        sent is not None
        and sent.membership == row.membership
        and row.changed_at <= sent.stream_pos
        and not dm_changed(ctx, row.room_id, sent)
    ):
        return None
    stripped = sync_rooms.stripped_state(ctx.conn, row.event_nid, ctx.ignored)
    if stripped is None:  # from an ignored user
        return None
    result: dict[str, Any] = {
        "initial": True,
        "membership": row.membership,
        "bump_stamp": row.bump_stamp,
        "invite_state" if row.membership == "invite" else "knock_state": stripped,
    }
    for event in stripped:
        if event["type"] == "m.room.name" and isinstance(event["content"].get("name"), str):
            result["name"] = event["content"]["name"]
        elif event["type"] == "m.room.avatar" and isinstance(event["content"].get("url"), str):
            result["avatar"] = event["content"]["url"]
    if is_dm:
        result["is_dm"] = True
    return RoomUpdate(result, SentRoom(ctx.now, row.membership, config, is_dm=is_dm), True)


@dataclass
class _State:
    """The room's state as the user may see it: now, or as of their leave."""

    non_member: dict[tuple[str, str], int] | None  # None: current state, looked up by key
    members: dict[str, int] | None  # None: current members, looked up one by one
    snapshot: RoomSnapshot | None = None

    def member(self, conn: apsw.Connection, room_id: str, user_id: str) -> int | None:
        if self.members is not None:
            return self.members.get(user_id)
        if self.snapshot is None:
            return room_state.current_entry(conn, room_id, MEMBER, user_id)
        known = self.snapshot.members
        if user_id not in known:
            self.prefetch_members(conn, room_id, {user_id})
        found = known[user_id]
        return None if found is None else found[0]

    def prefetch_members(self, conn: apsw.Connection, room_id: str, users: set[str]) -> None:
        """Reads the membership events of those users the hot data does not know yet, in
        one statement."""
        if self.snapshot is None or self.members is not None:
            return
        known = self.snapshot.members
        wanted = [user_id for user_id in users if user_id not in known]
        if not wanted:
            return
        found = {r.state_key: r for r in events.current_state_rows(conn, room_id, wanted)}
        for user_id in wanted:
            row = found.get(user_id)
            known[user_id] = None if row is None else (row.event_nid, room_cache.kept(row))

    def cached_rows(self) -> dict[int, EventRow]:
        if self.snapshot is None:
            return {}
        rows = dict(self.snapshot.rows)
        rows.update(found for found in self.snapshot.members.values() if found is not None)
        return rows

    def get(self, conn: apsw.Connection, room_id: str, key: tuple[str, str]) -> int | None:
        if key[0] == MEMBER:
            return self.member(conn, room_id, key[1])
        if self.non_member is None:
            return room_state.current_entry(conn, room_id, *key)
        return self.non_member.get(key)

    def all_members(self, conn: apsw.Connection, room_id: str) -> dict[str, int]:
        if self.members is None:
            self.members = store.all_members(conn, room_id)
        return self.members


def _load_state(ctx: RoomContext, room_id: str, upto: int) -> _State:
    """The state as of the user's leave."""
    group = sync_rooms.group_at(ctx.conn, room_id, upto)
    full = {} if group is None else room_state.state_at(ctx.conn, group)
    return _State(
        {k: v for k, v in full.items() if k[0] != MEMBER},
        {k[1]: v for k, v in full.items() if k[0] == MEMBER},
    )


def _joined(
    ctx: RoomContext, row: ListedRoom, config: RoomConfig, sent: SentRoom | None
) -> RoomUpdate | None:
    conn, room_id = ctx.conn, row.room_id
    joined = row.membership == "join"
    upto = ctx.now if joined else min(row.changed_at, ctx.now)
    whole = sent is None or (sent.membership != "join" and sent.membership != row.membership)
    expanded_timeline = (
        sent is not None and not whole and config.timeline_limit > sent.config.timeline_limit
    )
    expanded_state = sent is not None and not whole and config.expands(sent.config)
    unchanged_config = sent is not None and not (whole or expanded_timeline or expanded_state)
    is_dm = room_id in ctx.direct
    # m.direct changed for this room: sent again (an empty delta) with the new is_dm.
    new_dm = sent is not None and not whole and dm_changed(ctx, room_id, sent)
    if unchanged_config and room_id in ctx.quiet and not new_dm:
        return None
    latest = ctx.latest.get(room_id) if joined else None
    if latest is None:
        latest = store.latest_stream_pos(conn, room_id, upto)
    if (
        unchanged_config
        and sent is not None
        and latest <= sent.stream_pos
        and not new_dm
        and room_id not in ctx.read
    ):
        return None
    since = None if sent is None or whole else sent.stream_pos
    checker: VisibilityChecker
    if joined:
        # Joined: no viewer lookups, and no state lookups for events after the join.
        checker = _JoinedChecker(conn, Viewer(ctx.user_id, "join", None, ever_joined=True))
        checker.joined_at = row.changed_at
    else:
        checker = VisibilityChecker(conn, viewer(conn, ctx.user_id, room_id))
    changed = set() if since is None else store.state_changes(conn, room_id, since, upto)
    meta_changed = any(t in META_TYPES for t, _ in changed)
    # A delta of messages needs none of the room's hot data (its rebuild costs more).
    needs_snapshot = since is None or expanded_timeline or expanded_state or meta_changed
    snapshot = ctx.cache.get(conn, room_id, latest) if joined and needs_snapshot else None
    after = None if expanded_timeline else since
    tl = _tail_timeline(ctx, snapshot, after, config.timeline_limit, row.changed_at)
    if tl is None:
        tl = sync_rooms.timeline(
            conn,
            room_id,
            after,
            upto,
            RoomEventFilter(limit=config.timeline_limit),
            checker,
            ctx.ignored,
        )
    if snapshot is not None:
        state = _State(snapshot.non_member, None, snapshot)
    elif joined:
        state = _State(None, None)
    else:
        state = _load_state(ctx, room_id, upto)
    known = frozenset() if sent is None or whole else sent.members
    if snapshot is not None and not config.all_members():
        # The member events _wanted_state will look for, read together.
        needed = set(config.member_keys()) if whole or expanded_state else set()
        if config.lazy_members:
            for r in tl.rows:
                needed.add(r.sender)
                if r.type == MEMBER and r.state_key is not None:
                    needed.add(r.state_key)
        state.prefetch_members(conn, room_id, needed)
    wanted = _wanted_state(
        ctx, room_id, config, sent, state, tl.rows, changed, whole, known, tl.limited
    )
    sent_members = {k for t, k in wanted if t == MEMBER}
    # A gappy timeline makes lazy-loading clients drop their members (MSC4186).
    members = frozenset(sent_members if tl.limited and not whole else known | sent_members)
    cached = state.cached_rows()
    state_rows = events.get_by_nids(conn, [nid for nid in wanted.values() if nid not in cached])
    state_rows.update((nid, cached[nid]) for nid in wanted.values() if nid in cached)
    result: dict[str, Any] = {}
    if whole:
        result["initial"] = True
    result["membership"] = row.membership
    result["bump_stamp"] = row.bump_stamp
    if whole or expanded_state or meta_changed:
        meta = snapshot or room_cache.build(conn, room_id, latest)
        _meta(ctx, meta, result, whole, changed)
    if (whole and is_dm) or new_dm:
        result["is_dm"] = is_dm  # explicitly false when the room stopped being a DM
    serve_state = snapshot.serve if snapshot is not None else _serve_state
    result["required_state"] = [
        serve_state(r, ctx.now_ts) for r in sorted(state_rows.values(), key=lambda r: r.stream_pos)
    ]
    result["timeline"] = []  # served for all rooms at once: serve_timelines
    if expanded_timeline:
        result["unstable_expanded_timeline"] = True
    result["limited"] = tl.limited
    result["prev_batch"] = make_token(tl.rows[0].stream_pos - 1 if tl.rows else upto)
    result["num_live"] = (
        0 if ctx.base is None else sum(1 for r in tl.rows if r.stream_pos > ctx.base)
    )
    count, highlights = ctx.unread(room_id)
    result["notification_count"] = count
    result["highlight_count"] = highlights
    result["unread_notifications"] = {"notification_count": count, "highlight_count": highlights}
    return RoomUpdate(
        result, SentRoom(upto, row.membership, config, members, is_dm), whole, tl.rows, checker
    )


def _serve_state(row: EventRow, now_ts: int) -> msgspec.Raw:
    return client_format.serve(row, now=now_ts)


def serve_timelines(ctx: RoomContext, updates: dict[str, RoomUpdate]) -> None:
    """Fill in every room's timeline. Bundled aggregations are looked for once for all
    rooms; only rooms with an event that has children pay for bundling them."""
    parents = [r.event_id for u in updates.values() for r in u.timeline_rows]
    with_children = relations.with_children(ctx.conn, parents)
    device = (ctx.user_id, ctx.device_id)
    for update in updates.values():
        rows = update.timeline_rows
        if not rows:
            continue
        if any(r.event_id in with_children for r in rows):
            served = serve_events(
                ctx.conn, rows, user_id=ctx.user_id, device=device, checker=update.checker
            )
        else:
            served = [client_format.serve(r, requester_device=device, now=ctx.now_ts) for r in rows]
        update.result["timeline"] = served


def _wanted_state(
    ctx: RoomContext,
    room_id: str,
    config: RoomConfig,
    sent: SentRoom | None,
    state: _State,
    timeline: list[EventRow],
    changed: set[tuple[str, str]],
    whole: bool,
    known_members: frozenset[str],
    limited: bool,
) -> dict[tuple[str, str], int]:
    """The state keys to send, with the event each holds now."""
    conn = ctx.conn
    wanted: dict[tuple[str, str], int] = {}

    def add(key: tuple[str, str], previous: RoomConfig | None) -> None:
        if previous is not None and previous.matches(*key):
            return
        nid = state.get(conn, room_id, key)
        if nid is not None:
            wanted[key] = nid

    def everything(previous: RoomConfig | None) -> None:
        assert state.non_member is not None  # a whole room or a new config: all of it read
        if previous is None and state.snapshot is not None:
            wanted.update(state.snapshot.matching(config))
        else:
            for key, nid in state.non_member.items():
                if config.matches(*key) and (previous is None or not previous.matches(*key)):
                    wanted[key] = nid
        if config.all_members():
            for member, nid in state.all_members(conn, room_id).items():
                key = (MEMBER, member)
                if config.matches(*key) and (previous is None or not previous.matches(*key)):
                    wanted[key] = nid
        else:
            for member in config.member_keys():
                if config.matches(MEMBER, member):
                    add((MEMBER, member), previous)

    if whole:
        everything(None)
    else:
        for key in changed:
            if config.matches(*key):
                add(key, None)
        if sent is not None and config.expands(sent.config):
            everything(sent.config)
    if config.lazy_members:
        # MSC4186 lazy members: the timeline's senders and the targets of its member
        # events, unless the connection has them; on a delta without a gap, every
        # membership that changed.
        for r in timeline:
            for member in (r.sender, r.state_key if r.type == MEMBER else None):
                if member is not None and (
                    member not in known_members or (MEMBER, member) in changed
                ):
                    add((MEMBER, member), None)
        if not whole and not limited:
            for key in changed:
                if key[0] == MEMBER:
                    add(key, None)
    return wanted


def _meta(
    ctx: RoomContext,
    meta: RoomSnapshot,
    result: dict[str, Any],
    whole: bool,
    changed: set[tuple[str, str]],
) -> None:
    """name, avatar, heroes and the member counts."""
    if meta.avatar is not None:
        result["avatar"] = meta.avatar
    elif not whole and AVATAR in changed:
        result["avatar"] = None  # removed
    if meta.name is not None:
        result["name"] = meta.name
    else:
        heroes = meta.heroes(ctx.user_id)
        result["heroes"] = heroes
        if meta.alias is None:
            result["name"] = computed_name(heroes, meta.joined + meta.invited)
    result["joined_count"] = meta.joined
    result["invited_count"] = meta.invited


def _tail_timeline(
    ctx: RoomContext, snapshot: RoomSnapshot | None, after: int | None, limit: int, joined_at: int
) -> sync_rooms.Timeline | None:
    """The newest events of a room sent whole, from the hot data when it can answer:
    the user is joined, the events are after their join (so visible), no ignored user
    sent one, and the room's tail is long enough to tell whether older events exist."""
    if snapshot is None or after is not None:
        return None
    tail = snapshot.tail
    if limit >= len(tail) == room_cache.TAIL:
        # A full tail, all of it wanted: whether older events exist (`limited`) is
        # not known from it.
        return None
    picked = list(tail[-limit:]) if limit else []
    if any(r.stream_pos <= joined_at or r.sender in ctx.ignored for r in picked):
        return None
    return sync_rooms.Timeline(picked, len(tail) > limit, [])


class _JoinedChecker(VisibilityChecker):
    """A joined user sees every event after their join, whatever the history visibility."""

    joined_at: int = 0

    def can_see(self, row: EventRow) -> bool:
        return row.stream_pos > self.joined_at or super().can_see(row)


def computed_name(heroes: list[dict[str, str]], members: int) -> str:
    """The spec's room display name from heroes, for a room with neither name nor alias
    (https://spec.matrix.org/latest/client-server-api/#calculating-the-display-name-for-a-room)."""
    names = [h.get("displayname") or h["user_id"] for h in heroes]
    if not names:
        return "Empty Room"
    others = max(0, members - 1 - len(names))
    if others > 0:
        return f"{', '.join(names)} and {others} others"
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"
