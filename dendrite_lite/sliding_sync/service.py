"""Simplified sliding sync (MSC4186): the engine behind both request shapes.

One request is one read unit (`_compute`): the stream position now, the user's room list
by recency, the lists' windows, the rooms that changed since the pos (rooms that did not
change cost one indexed lookup each), the extensions. Connection state is in memory
(connections.py); a response with news gets a new pos, saved to SQLite with the
connection's next save (saving.py: now and then and at shutdown; the client never waits
on it, and a crash at worst loses the positions since the last save, whose clients start
over on M_UNKNOWN_POS, as the MSC allows). Long-polls wait on the notifier, which wakes
the user's requests for any change that concerns them.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.notifier import FAN_OUT, Notifier
from dendrite_lite.presence import Presence
from dendrite_lite.rooms.aggregations import ignored_users
from dendrite_lite.rooms.typing_notifications import TypingNotifications
from dendrite_lite.sliding_sync import extensions, room_results
from dendrite_lite.sliding_sync.connections import (
    Connections,
    ConnKey,
    Position,
    SentRoom,
    Settled,
    from_stored,
    parse_pos,
    unknown_pos,
)
from dendrite_lite.sliding_sync.extensions import ExtensionInput
from dendrite_lite.sliding_sync.requests import SyncRequest
from dendrite_lite.sliding_sync.required_state import RoomConfig
from dendrite_lite.sliding_sync.room_cache import RoomCache
from dendrite_lite.sliding_sync.room_lists import (
    LIVE,
    ListResult,
    RoomFacts,
    compute_lists,
    server_list,
)
from dendrite_lite.sliding_sync.room_results import RoomContext, RoomUpdate
from dendrite_lite.sliding_sync.saving import Saver
from dendrite_lite.storage import receipts, streams, to_device
from dendrite_lite.storage import sliding_sync as store
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.sliding_sync import ListedRoom

log = logging.getLogger(__name__)

MAX_TIMEOUT_MS = 5 * 60 * 1000
# Up to this many stream positions since the pos, one query finds the rooms with events
# (beyond it, each room is looked up by itself).
QUIET_WINDOW = 5000
MAX_CACHED_ROOM_LISTS = 1024
# Connections whose last answer is remembered for the idle fast path (oldest forgotten first)
MAX_IDLE_ENTRIES = 10_000


def _recency(row: ListedRoom) -> tuple[int, str]:
    return (-row.bump_stamp, row.room_id)


def _same_direct(a: frozenset[str], b: frozenset[str]) -> bool:
    """The same m.direct rooms, set at the same stream position (room_results.dm_changed
    asks both). Usually the same object; compared by value when the decoded m.direct of
    many users has gone round room_lists' cache."""
    return a is b or (a == b and getattr(a, "position", 0) == getattr(b, "position", 0))


def _not_live(row: ListedRoom) -> bool:
    return row.membership not in LIVE and not row.by_other


class RoomList:
    """The user's room list by recency, with what every request derives from it.
    Immutable once built: reader threads share it."""

    def __init__(
        self,
        rows: list[ListedRoom],
        by_id: dict[str, ListedRoom] | None = None,
        not_live: int | None = None,
        ids: list[str] | None = None,
    ) -> None:
        self.rows = rows
        self.by_id = {row.room_id: row for row in rows} if by_id is None else by_id
        self._not_live = sum(map(_not_live, rows)) if not_live is None else not_live
        # No room left by the user themselves: the server list is every row.
        self.all_live = self._not_live == 0
        # The room IDs in order (a window of an unfiltered list is a slice of them)
        self.ids: list[str] = [row.room_id for row in rows] if ids is None else ids

    def merged(self, changed: list[ListedRoom]) -> RoomList:
        """This list with `changed` rows put in (a message bumps one room): each row moved
        by bisection instead of sorting the whole list again (500 rooms: ~20x less)."""
        rows = list(self.rows)
        ids = list(self.ids)
        by_id = dict(self.by_id)
        not_live = self._not_live
        for row in changed:
            old = by_id.get(row.room_id)
            if old is not None:
                at = bisect.bisect_left(rows, _recency(old), key=_recency)
                if at < len(rows) and rows[at].room_id == old.room_id:
                    del rows[at]
                    del ids[at]
                else:  # not where its key says: find it the slow way
                    rows = [r for r in rows if r.room_id != old.room_id]
                    ids = [r.room_id for r in rows]
                not_live -= _not_live(old)
            at = bisect.bisect_left(rows, _recency(row), key=_recency)
            rows.insert(at, row)
            ids.insert(at, row.room_id)
            by_id[row.room_id] = row
            not_live += _not_live(row)
        return RoomList(rows, by_id, not_live, ids)


@dataclass(frozen=True)
class CachedRoomList:
    """A user's room list as of stream position `at`, with the version of their
    memberships it was read at and their summary (storage/sliding_sync.py)."""

    version: int  # of the user's memberships (storage/sliding_sync.room_list_version)
    summary: tuple[int, int, int, int]
    at: int
    rows: RoomList


@dataclass
class Computed:
    """One computation of a response, before it is given a pos."""

    unknown_pos: bool = False
    numbers: tuple[int, int] | None = None
    loaded: Position | None = None
    loaded_conn_nid: int = 0
    now: int = 0
    lists: dict[str, ListResult] = field(default_factory=dict)
    rooms: dict[str, RoomUpdate] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    news: bool = False
    acknowledged_to_device: int | None = None
    settled: Settled | None = None


@dataclass(frozen=True)
class _Answered:
    """A connection's last answer: its pos, the notifier tick read before it was
    computed, and the request it answered (without txn_id)."""

    pos_nid: int
    tick: int
    request: SyncRequest


@dataclass(frozen=True)
class SlidingSyncResult:
    pos: str
    txn_id: str | None
    lists: dict[str, ListResult]
    rooms: dict[str, dict[str, Any]]
    extensions: dict[str, Any]


class SlidingSync:
    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        typing: TypingNotifications,
        presence_service: Presence,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.typing = typing
        self.presence = presence_service
        # Requests per device (sliding sync: per connection); off unless configured
        self.limiter = limiter or RateLimiter(0, 0, enabled=False)
        # New connections (and connections loaded back) per device, at the same rate.
        self.device_limiter = RateLimiter(
            self.limiter.per_second, int(self.limiter.burst), enabled=self.limiter.enabled
        )
        self.connections = Connections()
        self.saver = Saver(db, self.connections)
        self.room_cache = RoomCache()
        self._room_lists: OrderedDict[str, CachedRoomList] = OrderedDict()
        self._room_lists_lock = threading.Lock()
        self._answered: OrderedDict[ConnKey, _Answered] = OrderedDict()

    async def sync(
        self,
        requester: Requester,
        request: SyncRequest,
        *,
        pos: str | None,
        timeout_ms: int,
        set_presence: str = "online",
        txn_id: str | None = None,
    ) -> SlidingSyncResult:
        """`txn_id`: the request's, when `request` was parsed without it (the fast lane
        keeps parsed requests without theirs); else the request's own is answered."""
        if request.txn_id is not None:
            txn_id = request.txn_id
            request = dataclasses.replace(request, txn_id=None)
        pos_nid = None if pos is None else parse_pos(pos)
        key: ConnKey = (requester.user_id, requester.device_id, request.conn_id)
        if key not in self.connections.by_key:
            # Starting (or loading) a connection is charged to the device too: a client
            # cycling through conn_ids would otherwise get a fresh bucket every time.
            self.device_limiter.check_and_spend(f"{requester.user_id}|{requester.device_id}")
        self.limiter.check_and_spend("|".join(key))
        self.connections.touch(key, now_ms())
        await self.presence.on_sync(requester.user_id, set_presence)
        base = None if pos_nid is None else self.connections.find(key, pos_nid)
        if base is not None:
            self.connections.confirm(key, base.pos_nid)
        elif pos_nid is not None and key in self.connections.by_key:
            # Memory holds the connection and not this pos: gone, whatever the database
            # still has (it is saved now and then, saving.py).
            raise unknown_pos()
        # The MSC: timeout is ignored without a pos (an initial request answers at once).
        timeout_s = 0.0 if pos_nid is None else max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
        deadline = time.monotonic() + timeout_s
        woken = 0  # what woke this request's last wait: a fan-out is computed after other work
        answered = self._answered.get(key)
        if (
            base is not None
            and answered is not None
            and answered.pos_nid == base.pos_nid
            and timeout_s > 0
            and (answered.request is request or answered.request == request)
            and not self.notifier.changed_since(requester.user_id, answered.tick)
        ):
            # The client polls again with the pos it was just given and the same request,
            # and nothing that concerns the user happened since that answer was computed:
            # computing now would find nothing, so wait first (the re-poll after each
            # wake-up of a fan-out costs no read). Every change a response shows notifies
            # the users it concerns; that is what a waiting long-poll relies on already.
            woken = await self.notifier.wait(requester.user_id, timeout_s, after_tick=answered.tick)
        while True:
            tick = self.notifier.tick
            typing_serial = self.typing.serial
            computed = await self.db.read(
                functools.partial(
                    self._compute,
                    requester=requester,
                    request=request,
                    base=base,
                    load_pos=pos_nid if base is None else None,
                    need_numbers=not self.connections.numbered,
                ),
                background=woken > FAN_OUT,
                # Woken by a change since an answer: an increment, read on the loop.
                short=0 < woken <= FAN_OUT,
            )
            if computed.numbers is not None:
                self.connections.start_numbering(*computed.numbers, now_ms())
            if computed.unknown_pos:
                raise unknown_pos()
            if computed.loaded is not None:
                base, evicted = self.connections.install(
                    key, computed.loaded_conn_nid, computed.loaded, now_ms()
                )
                self._forget(evicted)
                self.connections.confirm(key, base.pos_nid)
            if computed.acknowledged_to_device is not None:
                await self._delete_acknowledged(requester, computed.acknowledged_to_device)
            remaining = deadline - time.monotonic()
            if computed.news or base is None or remaining <= 0:
                break
            woken = await self.notifier.wait(requester.user_id, remaining, after_tick=tick)
            if not woken:
                break
        result = self._finish(key, txn_id, base, computed, typing_serial)
        self._answered[key] = _Answered(int(result.pos), tick, request)
        self._answered.move_to_end(key)
        if len(self._answered) > MAX_IDLE_ENTRIES:
            self._answered.popitem(last=False)
        return result

    def _finish(
        self,
        key: ConnKey,
        txn_id: str | None,
        base: Position | None,
        computed: Computed,
        typing_serial: int,
    ) -> SlidingSyncResult:
        rooms = {room_id: update.result for room_id, update in computed.rooms.items()}
        if base is not None and not computed.news:
            pos_nid = base.pos_nid  # nothing new: the same pos, no state, no write
        else:
            pos_nid = self._record(key, base, computed, typing_serial)
        return SlidingSyncResult(
            str(pos_nid),
            txn_id,
            computed.lists,
            rooms,
            computed.extensions,
        )

    def _record(
        self, key: ConnKey, base: Position | None, computed: Computed, typing_serial: int
    ) -> int:
        pos_nid = self.connections.new_pos_nid()
        sent: dict[str, SentRoom] = dict(base.rooms) if base is not None else {}
        sent.update({room_id: update.sent for room_id, update in computed.rooms.items()})
        lists = {name: (r.count, r.room_ids()) for name, r in computed.lists.items()}
        position = Position(pos_nid, computed.now, typing_serial, lists, sent, computed.settled)
        connection = self.connections.by_key.get(key)
        if base is not None and (connection is None or base.pos_nid not in connection.positions):
            # The connection started over (a request without pos) while this one waited:
            # its state is gone, so this answer cannot be built on.
            raise unknown_pos()
        if base is None or connection is None:
            connection, evicted = self.connections.new_connection(key, now_ms())
            self._forget(evicted)
        connection.positions[pos_nid] = position
        self.saver.changed(key)
        return pos_nid

    def _forget(self, evicted: list[ConnKey]) -> None:
        """Connections pushed out of memory by a new one of their device go from the
        database too (a restart must not bring them back)."""
        for user_id, device_id, conn_id in evicted:
            self._answered.pop((user_id, device_id, conn_id), None)
            self.db.write_soon(
                functools.partial(
                    store.drop_connection, user_id=user_id, device_id=device_id, conn_id=conn_id
                )
            )

    async def _delete_acknowledged(self, requester: Requester, upto: int) -> None:
        def delete_acknowledged(conn: apsw.Connection) -> None:
            to_device.delete_acknowledged(conn, requester.user_id, requester.device_id, upto)

        await self.db.write(delete_acknowledged)

    # -- on a reader thread --------------------------------------------------------------

    def _room_list(self, conn: apsw.Connection, user_id: str, now: int) -> tuple[RoomList, int]:
        """The user's room list by recency, and the version of their memberships it holds
        for. Kept in memory with the stream position it holds for: memberships changed
        since (a per-user counter tells, storage/sliding_sync.room_list_version) and
        rooms bumped since (the rooms with events since, a position window the batch's
        other reads share) are merged in; anything else rebuilds it."""
        version = store.room_list_version(conn, user_id)
        cached = self._room_lists.get(user_id)
        updated = None
        if cached is not None and cached.at <= now and now - cached.at <= QUIET_WINDOW:
            updated = self._updated(conn, user_id, cached, version, now)
        if updated is None:
            summary = store.memberships_summary(conn, user_id)
            updated = (RoomList(store.room_list(conn, user_id)), summary)
        rows, summary = updated
        fresh = CachedRoomList(version, summary, now, rows)
        if fresh == cached:  # nothing changed, not even the position (RoomList: identity)
            return rows, version
        with self._room_lists_lock:
            self._room_lists[user_id] = fresh
            self._room_lists.move_to_end(user_id)
            while len(self._room_lists) > MAX_CACHED_ROOM_LISTS:
                self._room_lists.popitem(last=False)
        return rows, version

    @staticmethod
    def _updated(
        conn: apsw.Connection, user_id: str, cached: CachedRoomList, version: int, now: int
    ) -> tuple[RoomList, tuple[int, int, int, int]] | None:
        """`cached` brought to `now` (with the summary of memberships it was read with), or
        None if only a rebuild will do (a room forgotten or gone)."""
        changed: dict[str, ListedRoom] = {}
        summary = cached.summary
        if version != cached.version:
            summary = store.memberships_summary(conn, user_id)
            count, _pos, _nid, forgotten = summary
            if cached.summary[3] != forgotten or cached.summary[0] > count:
                return None
            # Memberships changed (a join, typically): read only those rows.
            changed_after = (cached.summary[1], cached.summary[2])
            changed = {row.room_id: row for row in store.room_list(conn, user_id, changed_after)}
        if now > cached.at:
            listed = cached.rows.by_id
            candidates = [
                room_id
                for room_id in streams.rooms_between(conn, "events", cached.at, now)
                if room_id in listed and room_id not in changed
            ]
            if candidates:
                for room_id, stamp in store.bumps(conn, candidates).items():
                    row = listed[room_id]
                    if row.membership in LIVE and stamp > row.bump_stamp:
                        changed[room_id] = msgspec.structs.replace(row, bump_stamp=stamp)
        if not changed:
            return cached.rows, summary
        return cached.rows.merged(list(changed.values())), summary

    def _compute(
        self,
        conn: apsw.Connection,
        *,
        requester: Requester,
        request: SyncRequest,
        base: Position | None,
        load_pos: int | None,
        need_numbers: bool,
    ) -> Computed:
        user_id, device_id = requester.user_id, requester.device_id
        numbers = store.max_ids(conn) if need_numbers else None
        loaded = None
        loaded_conn_nid = 0
        if load_pos is not None:
            # After a restart (or from another worker's memory): the stored state.
            stored = store.load_position(conn, user_id, device_id, request.conn_id, load_pos)
            if stored is None:
                return Computed(unknown_pos=True, numbers=numbers)
            base = loaded = from_stored(stored)
            loaded_conn_nid = stored.conn_nid
        now = streams.current_position(conn)
        base_stream = None if base is None else min(base.stream_pos, now)
        sent_rooms = {} if base is None else base.rooms
        room_list, memberships_version = self._room_list(conn, user_id, now)
        rows = room_list.rows
        facts = RoomFacts(conn, user_id)
        if room_list.all_live:
            list_results, configs = compute_lists(request.lists, rows, facts, room_list.ids)
        else:
            list_results, configs = compute_lists(
                request.lists, server_list(rows, sent_rooms), facts
            )
        by_id = room_list.by_id
        subscribed: list[str] = []
        for room_id, config in request.subscriptions.items():
            row = by_id.get(room_id)
            # MSC4186: only rooms the user is in, invited to or knocked on, or was in.
            if row is None or (
                row.membership not in LIVE and row.room_id not in sent_rooms and not row.by_other
            ):
                continue
            subscribed.append(room_id)
            known: RoomConfig | None = configs.get(room_id)
            configs[room_id] = config if known is None else known.combine(config)
        quiet: frozenset[str] = frozenset()
        read: frozenset[str] = frozenset()
        # The rooms with any receipt since are one shared probe (the receipts extension
        # asks it too); only when there are some is the user's own looked for.
        if base_stream is not None and streams.rooms_between(conn, "receipts", base_stream, now):
            read = receipts.rooms_read_by(conn, user_id, base_stream, now)
        # The rooms of the pos's windows: kept up to date by the answers on it.
        checked: set[str] = set()
        if base is not None:
            checked = set().union(*(ids for _, ids in base.lists.values()))
        if base is not None and base_stream is not None and now - base_stream <= QUIET_WINDOW:
            active = streams.rooms_between(conn, "events", base_stream, now)
            quiet = frozenset(checked - active - read)
        direct = facts.direct
        # Rooms the pos had settled, with nothing new since: not looked at one by one.
        skipped: frozenset[str] = frozenset()
        known_settled = None if base is None else base.settled
        if (
            quiet
            and known_settled is not None
            and _same_direct(known_settled.direct, direct)
            and known_settled.memberships_version == memberships_version
            and known_settled.configs == configs
        ):
            skipped = quiet & known_settled.rooms
        todo = [room_id for room_id in configs if room_id not in skipped] if skipped else configs
        unquiet = [room_id for room_id in todo if room_id not in quiet]
        ctx = RoomContext(
            conn,
            user_id,
            device_id,
            now,
            base_stream,
            direct,
            frozenset(ignored_users(conn, user_id)),
            self.room_cache,
            store.latest_stream_positions(
                conn,
                [room_id for room_id in unquiet if by_id[room_id].membership == "join"],
                now,
            ),
            quiet,
            candidates=unquiet,
            read=read,
        )
        updates: dict[str, RoomUpdate] = {}
        now_settled: list[str] = []
        window_ids = {name: result.room_ids() for name, result in list_results.items()}
        returning = _returning(base, window_ids, checked)
        for room_id in todo:
            config = configs[room_id]
            row, sent = by_id[room_id], sent_rooms.get(room_id)
            if sent is not None and room_results.settled(ctx, row, config, sent):
                now_settled.append(room_id)
                continue
            update = room_results.build(ctx, row, config, sent)
            if update is not None:
                updates[room_id] = update
                sent = update.sent
            if sent is not None and room_results.consistent(ctx, row, config, sent):
                now_settled.append(room_id)
        room_results.serve_timelines(ctx, updates)
        initial = frozenset(room_id for room_id, u in updates.items() if u.initial)
        ext = extensions.compute(
            request,
            ExtensionInput(
                conn,
                user_id,
                device_id,
                now,
                base_stream,
                None if base is None else base.typing_serial,
                window_ids,
                tuple(subscribed),
                initial,
                self.typing.typing_in,
                self.typing.rooms_changed_since,
                {room_id: u.sent.members for room_id, u in updates.items() if u.initial},
                {
                    room_id: tuple(r.event_id for r in u.timeline_rows)
                    for room_id, u in updates.items()
                    if u.initial or "unstable_expanded_timeline" in u.result
                },
                {r: at for r, at in returning.items() if r not in initial},
            ),
        )
        lists_changed = base is None or base.lists != {
            name: (r.count, window_ids[name]) for name, r in list_results.items()
        }
        settled = Settled(skipped.union(now_settled), configs, direct, memberships_version)
        return Computed(
            numbers=numbers,
            loaded=loaded,
            loaded_conn_nid=loaded_conn_nid,
            now=now,
            lists=list_results,
            rooms=updates,
            extensions=ext.response,
            news=bool(updates) or ext.news or lists_changed,
            acknowledged_to_device=ext.acknowledged_to_device,
            settled=settled,
        )


def _returning(
    base: Position | None, window_ids: Mapping[str, tuple[str, ...]], in_windows: set[str]
) -> dict[str, int]:
    """The rooms of this response's windows the connection had, but outside the pos's
    windows (`in_windows`: not kept up to date meanwhile), with the stream position it had
    them up to. With the same windows as the pos there are none (Element X's steady
    state: nothing to look through). A subscribed room is kept up to date while
    subscribed, and the position does not hold which rooms were: subscriptions are left
    out."""
    if base is None or not base.rooms:
        return {}
    if {name: ids for name, (_count, ids) in base.lists.items()} == window_ids:
        return {}
    returning: dict[str, int] = {}
    for ids in window_ids.values():
        for room_id in ids:
            sent = base.rooms.get(room_id)
            if sent is not None and room_id not in in_windows:
                returning[room_id] = sent.stream_pos
    return returning
