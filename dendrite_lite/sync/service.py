"""GET /sync: https://spec.matrix.org/latest/client-server-api/#syncing

A sync reads one snapshot up to the current stream position (`now`) and answers a token
for it (sync/tokens.py). An incremental sync with nothing new waits on the notifier:
only changes that concern this user wake it, and it then computes once more.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.e2ee import device_lists
from dendrite_lite.filters import Filter, type_allowed
from dendrite_lite.notifier import FAN_OUT, Notifier
from dendrite_lite.presence import Presence
from dendrite_lite.push.ruleset import default_account_data
from dendrite_lite.rooms.aggregations import ignored_users
from dendrite_lite.rooms.typing_notifications import TypingNotifications
from dendrite_lite.storage import account_data, presence, streams, to_device
from dendrite_lite.storage.db import Database
from dendrite_lite.sync import rooms as room_sections
from dendrite_lite.sync import tokens
from dendrite_lite.sync.filter_ids import FilterIds
from dendrite_lite.sync.lazy_members import SentMembers
from dendrite_lite.sync.rooms import Context, TypingView, Window
from dendrite_lite.sync.shaping import Shaper
from dendrite_lite.sync.tokens import SyncToken

MAX_TIMEOUT_MS = 5 * 60 * 1000
PUSH_RULES = "m.push_rules"
TO_DEVICE_BATCH = 100
# Devices whose last answer is remembered for the idle fast path (oldest forgotten first)
MAX_IDLE_ENTRIES = 10_000


@dataclass(frozen=True)
class _Computed:
    response: dict[str, Any]
    empty: bool
    acknowledged_to_device: bool
    # The answer carried to-device messages: the next request acknowledges them
    carried_to_device: bool = False


@dataclass(frozen=True)
class _Answered:
    """The last answer a device was given: its token, the notifier tick read before it
    was computed, and the filter it was computed with."""

    token: str
    tick: int
    sync_filter: Filter


class Sync:
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
        # Requests per device; off unless configured
        self.limiter = limiter or RateLimiter(0, 0, enabled=False)
        self.sent_members = SentMembers()
        self.filter_ids = FilterIds(db)
        self._answered: OrderedDict[tuple[str, str], _Answered] = OrderedDict()

    async def sync(
        self,
        requester: Requester,
        *,
        since: str | None,
        timeout_ms: int,
        full_state: bool,
        sync_filter: Filter,
        set_presence: str = "online",
        use_state_after: bool = False,
    ) -> dict[str, Any]:
        token = tokens.parse(since) if since is not None else None
        self.limiter.check_and_spend(f"{requester.user_id}|{requester.device_id}")
        await self.presence.on_sync(requester.user_id, set_presence)
        timeout_s = max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
        deadline = time.monotonic() + timeout_s
        shaper = Shaper(sync_filter)
        device = (requester.user_id, requester.device_id)
        if token is None:
            # A new sync sequence: the client remembers no lazy-loaded members.
            self.sent_members.forget(device)
        woken = 0  # what woke this request's last wait: a fan-out is computed after other work
        answered = self._answered.get(device)
        if (
            answered is not None
            and since == answered.token
            and not full_state
            and timeout_s > 0
            and answered.sync_filter == sync_filter
            and not self.notifier.changed_since(requester.user_id, answered.tick)
        ):
            # The client polls again with the token it was just given, and nothing that
            # concerns it happened since that answer was computed: computing now would
            # find nothing, so wait first (the re-poll after each wake-up of a fan-out
            # costs no read). Every change a sync shows notifies the users it concerns;
            # that is what a waiting long-poll relies on already.
            woken = await self.notifier.wait(requester.user_id, timeout_s, after_tick=answered.tick)
        while True:
            tick = self.notifier.tick
            # Read on the event loop, where typing changes happen; the serial is read
            # before the rooms' sets (see rooms/typing_notifications.py).
            typing_serial = self.typing.serial
            computed = await self.db.read(
                functools.partial(
                    self._compute,
                    requester=requester,
                    token=token,
                    full_state=full_state,
                    sync_filter=sync_filter,
                    shaper=shaper,
                    typing_serial=typing_serial,
                    use_state_after=use_state_after,
                ),
                background=woken > FAN_OUT,
                # Woken by a change since an answer: an increment, read on the loop.
                short=0 < woken <= FAN_OUT,
            )
            if computed.acknowledged_to_device and token is not None:
                await self._delete_acknowledged(requester, token.to_device_position)
            remaining = deadline - time.monotonic()
            if not computed.empty or token is None or full_state or remaining <= 0:
                break
            woken = await self.notifier.wait(requester.user_id, remaining, after_tick=tick)
            if not woken:
                break
        self._remember(device, computed, tick, sync_filter)
        return computed.response

    def _remember(
        self, device: tuple[str, str], computed: _Computed, tick: int, sync_filter: Filter
    ) -> None:
        if computed.carried_to_device:
            self._answered.pop(device, None)
            return
        self._answered[device] = _Answered(computed.response["next_batch"], tick, sync_filter)
        self._answered.move_to_end(device)
        if len(self._answered) > MAX_IDLE_ENTRIES:
            self._answered.popitem(last=False)

    async def _delete_acknowledged(self, requester: Requester, upto: int) -> None:
        def delete(conn: apsw.Connection) -> None:
            to_device.delete_acknowledged(conn, requester.user_id, requester.device_id, upto)

        await self.db.write(delete)

    def _compute(
        self,
        conn: apsw.Connection,
        *,
        requester: Requester,
        token: SyncToken | None,
        full_state: bool,
        sync_filter: Filter,
        shaper: Shaper,
        typing_serial: int,
        use_state_after: bool,
    ) -> _Computed:
        now = streams.current_position(conn)
        since = None if token is None else min(token.position, now)
        window = Window(
            requester.user_id,
            requester.device_id,
            since,
            now,
            full_state,
            sync_filter,
            frozenset(ignored_users(conn, requester.user_id)),
            use_state_after,
        )
        changed_data = account_data.changed_since(
            conn, requester.user_id, 0 if window.whole or since is None else since
        )
        context = Context(
            conn,
            window,
            shaper,
            self.sent_members,
            TypingView(
                None if token is None or full_state else token.typing,
                self.typing.typing_in,
                self.typing.changed_since,
                self.typing.rooms_changed_since,
            ),
            changed_data,
        )
        rooms_section = room_sections.rooms_section(context)
        global_data = [
            room_sections.account_data_event(type_, content)
            for room_id, type_, content in changed_data
            if room_id == account_data.GLOBAL and type_allowed(sync_filter.account_data, type_)
        ]
        if (
            window.whole
            and type_allowed(sync_filter.account_data, PUSH_RULES)
            and not any(r == account_data.GLOBAL and t == PUSH_RULES for r, t, _ in changed_data)
        ):
            # A user who never changed a push rule has the server's defaults; clients
            # expect m.push_rules in their initial sync all the same.
            global_data.insert(
                0,
                room_sections.account_data_event(
                    PUSH_RULES, default_account_data(requester.user_id)
                ),
            )
        if sync_filter.account_data.limit is not None:
            global_data = global_data[-sync_filter.account_data.limit :]
        after = 0 if token is None else min(token.to_device_position, now)
        messages = to_device.pending(
            conn, requester.user_id, requester.device_id, after, now, TO_DEVICE_BATCH + 1
        )
        to_device_upto = None
        if len(messages) > TO_DEVICE_BATCH:
            # More are waiting. Stop at a whole stream position (a token cannot point
            # inside one); the next sync continues from there.
            last = messages[TO_DEVICE_BATCH].stream_pos
            messages = [m for m in messages[:TO_DEVICE_BATCH] if m.stream_pos != last]
            if not messages:  # one position holds more than a batch: send it all
                messages = to_device.pending(
                    conn, requester.user_id, requester.device_id, after, last, 1 << 30
                )
            to_device_upto = messages[-1].stream_pos
        acknowledged = token is not None and to_device.has_acknowledged(
            conn, requester.user_id, requester.device_id, min(token.to_device_position, now)
        )
        presence_events = self._presence(conn, window)
        # End-to-end encryption (e2ee/device_lists.py): device-list changes only on an
        # incremental sync; key counts on every one, but not a reason to answer early.
        changed, left = (
            ([], [])
            if since is None
            else device_lists.device_list_changes(conn, requester.user_id, since, now)
        )
        empty = (
            not any(rooms_section.values())
            and not global_data
            and not messages
            and not presence_events
            and not changed
            and not left
        )
        next_token = SyncToken(now, typing_serial, to_device_upto)
        response: dict[str, Any] = {
            "next_batch": str(next_token),
            "rooms": rooms_section,
            "account_data": {"events": global_data},
            "presence": {"events": presence_events},
            "to_device": {
                "events": [
                    {"sender": m.sender, "type": m.type, "content": msgspec.Raw(m.content)}
                    for m in messages
                ]
            },
            "device_lists": {"changed": changed, "left": left},
            "device_one_time_keys_count": device_lists.one_time_key_counts(
                conn, requester.user_id, requester.device_id
            ),
            "device_unused_fallback_key_types": device_lists.unused_fallback_key_types(
                conn, requester.user_id, requester.device_id
            ),
        }
        return _Computed(response, empty, acknowledged, bool(messages))

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
            and row.user_id not in window.ignored
        ]
        return events[: pf.limit] if pf.limit is not None else events
