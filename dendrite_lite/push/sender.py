"""Delivery of notifications to HTTP push gateways: one background task, off the send path.

https://spec.matrix.org/latest/push-gateway-api/#post_matrixpushv1notify

The send path only records notifications (push/hook.py) and, when the recipient has a
pusher, pokes this sender from the writer thread. The sender then waits for that write
batch to commit (a no-op write unit queued behind it resolves only after the commit),
reads what is pending and delivers it, one task per pusher (at most MAX_CONCURRENT at a
time), each pusher's notifications in order:

- a pusher remembers how far it has delivered (`last_stream_pos`), so what is pending
  survives a restart and is sent after it;
- a gateway error or timeout is retried with exponential backoff (1 s doubling to 1 h);
  a notification still failing after a day is given up, as Synapse does, so that a
  gateway fixed later does not get a flood of stale notifications;
- a pushkey the gateway names in `rejected` loses its pusher ("Homeservers must cease
  sending notification requests for these pushkeys and remove the associated pushers");
- when a user reads (a receipt lowers their counts), each of their pushers gets a
  notification with only `counts`, so the app's badge goes down on every phone, as
  Synapse does; best effort: not retried, not kept across a restart.

A slow or broken gateway only delays its own pushers: nothing here runs on the writer
thread or holds up a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.clock import now_ms
from dendrite_lite.outbound_http import OutboundClient, OutboundError
from dendrite_lite.push.evaluator import Outcome
from dendrite_lite.push.hook import PushHook
from dendrite_lite.storage import notifications as notification_store
from dendrite_lite.storage import pushers as store
from dendrite_lite.storage import room_state
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.events import get_by_nids
from dendrite_lite.storage.notifications import NotificationRow
from dendrite_lite.storage.pushers import PusherRow

log = logging.getLogger(__name__)

BATCH = 20
MAX_CONCURRENT = 16
INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 3600.0
GIVE_UP_AFTER_MS = 24 * 3600 * 1000
# Everything is looked at again this often, whatever the pokes said.
FULL_SCAN_S = 300.0
# Notifications older than this are deleted (/notifications shows the last month).
RETENTION_MS = 30 * 24 * 3600 * 1000
PRUNE_EVERY_S = 3600.0
PRUNE_BATCH = 10_000


@dataclass(frozen=True)
class _Batch:
    pusher: PusherRow | None  # None: deleted meanwhile
    notifications: list[NotificationRow]
    unread: int
    # For the full format: sender display names, room names and aliases.
    display_names: dict[tuple[str, str], str]
    room_names: dict[str, str]
    room_aliases: dict[str, str]


def _barrier(conn: apsw.Connection) -> None:
    """A write unit that does nothing: it resolves after the batches queued before it."""


class PushSender:
    def __init__(
        self,
        db: Database,
        hook: PushHook,
        client: OutboundClient,
        *,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
    ) -> None:
        self.db = db
        self.hook = hook
        self.client = client
        self.initial_backoff_s = initial_backoff_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._dirty: set[str] = set()
        self._badges: set[str] = set()
        self._badge_tasks: set[asyncio.Task[None]] = set()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()
        # pusher id -> (when to try again (monotonic), current delay, user ID)
        self._backoff: dict[int, tuple[float, float, str]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self.delivered = 0  # notifications accepted by gateways

    # -- waking ---------------------------------------------------------------------------

    def poke_from_writer(self, user_ids: set[str]) -> None:
        """Called on the writer thread, inside the write unit that notified them."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._poke, user_ids)

    def _poke(self, user_ids: set[str]) -> None:
        self._dirty |= user_ids
        self._wake.set()

    def badge(self, user_id: str) -> None:
        """On the event loop: `user_id` read something; send their new unread count."""
        self._badges.add(user_id)
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        hook = self.hook

        def load_users(conn: apsw.Connection) -> None:
            # On the writer thread, like every other change to the set.
            hook.users_with_pushers = store.users_with_pushers(conn)

        await self.db.write(load_users)
        self.hook.wake_sender = self.poke_from_writer
        self.hook.badge_sender = self.badge
        full_scan = True
        last_scan = last_prune = time.monotonic()
        try:
            while True:
                if not full_scan:
                    await self._sleep(last_scan)
                now = time.monotonic()
                if now - last_scan >= FULL_SCAN_S:
                    full_scan = True
                users, self._dirty = self._dirty, set()
                if self._badges:
                    badges, self._badges = self._badges, set()
                    task = asyncio.create_task(self._send_badges(badges))
                    self._badge_tasks.add(task)
                    task.add_done_callback(self._badge_tasks.discard)
                for pusher_id, (due, _delay, user_id) in list(self._backoff.items()):
                    if due <= now and pusher_id not in self._tasks:
                        users.add(user_id)
                if full_scan or users:
                    try:
                        await self._dispatch(users, full_scan)
                    except Exception:
                        log.exception("push sender: reading pending notifications failed")
                        await asyncio.sleep(1.0)
                    if full_scan:
                        full_scan, last_scan = False, time.monotonic()
                if now - last_prune >= PRUNE_EVERY_S:
                    last_prune = now
                    await self._prune()
        finally:
            self.hook.wake_sender = None
            self.hook.badge_sender = None
            tasks = [*self._tasks.values(), *self._badge_tasks]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _sleep(self, last_scan: float) -> None:
        now = time.monotonic()
        wake_at = last_scan + FULL_SCAN_S
        for pusher_id, (due, _delay, _user) in self._backoff.items():
            if pusher_id not in self._tasks:  # a retry under way sets its own next time
                wake_at = min(wake_at, due)
        if self._dirty or self._badges:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, wake_at - now))
        self._wake.clear()

    async def _dispatch(self, users: set[str], full_scan: bool) -> None:
        # The pokes came from inside write units: wait for their batch to commit.
        await self.db.write(_barrier)
        if full_scan:
            rows = await self.db.read(store.all_pushers)
        else:
            rows = await self.db.read(functools.partial(store.for_users, user_ids=users))
        now = time.monotonic()
        found = {row.id for row in rows}
        for pusher_id, (due, _delay, user_id) in list(self._backoff.items()):
            # A pusher deleted while backing off (logout, rejected elsewhere) is forgotten.
            if (full_scan or user_id in users) and pusher_id not in found and due <= now:
                del self._backoff[pusher_id]
        for row in rows:
            backoff = self._backoff.get(row.id)
            if backoff is not None and backoff[0] > now:
                continue
            task = self._tasks.get(row.id)
            if task is not None:
                self._again.add(row.id)
                continue
            self._tasks[row.id] = asyncio.create_task(self._deliver_all(row))

    async def _prune(self) -> None:
        cutoff = now_ms() - RETENTION_MS
        try:
            while (
                await self.db.write(
                    lambda conn: notification_store.prune(conn, cutoff, PRUNE_BATCH)
                )
                == PRUNE_BATCH
            ):
                pass
        except Exception:
            log.exception("pruning old notifications failed")

    # -- badges ---------------------------------------------------------------------------

    async def _send_badges(self, user_ids: set[str]) -> None:
        try:
            pushers, unread = await self.db.read(functools.partial(_load_badges, user_ids=user_ids))
            for pusher in pushers:
                url = pusher.data.get("url")
                if not isinstance(url, str):
                    continue
                body = msgspec.json.encode(badge_payload(pusher, unread.get(pusher.user_id, 0)))
                result = await self._post(pusher, url, body)
                if result == "rejected":
                    await self._remove(pusher)
        except Exception:
            log.exception("push sender: badge update failed")

    # -- one pusher -------------------------------------------------------------------------

    async def _deliver_all(self, pusher: PusherRow) -> None:
        try:
            async with self._slots:
                await self._deliver(pusher)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push sender: delivering to pusher %d failed", pusher.id)
            self._back_off(pusher)
        finally:
            self._tasks.pop(pusher.id, None)
            self._again.discard(pusher.id)

    async def _deliver(self, pusher: PusherRow) -> None:
        position = pusher.last_stream_pos
        failing_since = pusher.failing_since
        while True:
            self._again.discard(pusher.id)
            batch = await self.db.read(
                functools.partial(_load_batch, pusher_id=pusher.id, after=position)
            )
            if batch.pusher is None:
                return
            pusher = batch.pusher
            if not batch.notifications:
                if pusher.id in self._again:
                    continue
                return
            for notification in batch.notifications:
                result = await self._send(pusher, notification, batch)
                if result == "ok":
                    position = notification.stream_pos
                    failing_since = None
                    self.delivered += 1
                    continue
                if result == "rejected":
                    await self._remove(pusher)
                    return
                now = now_ms()
                if failing_since is None:
                    failing_since = now
                if now - failing_since > GIVE_UP_AFTER_MS:
                    log.warning(
                        "giving up on a notification for %s to %s after a day of failures",
                        pusher.user_id,
                        pusher.app_id,
                    )
                    position, failing_since = notification.stream_pos, None
                    self._backoff.pop(pusher.id, None)
                    continue
                await self.db.write(
                    functools.partial(
                        _record_failure,
                        pusher_id=pusher.id,
                        position=position,
                        failing_since=failing_since,
                    )
                )
                self._back_off(pusher)
                return
            await self.db.write(
                functools.partial(store.advance, pusher_id=pusher.id, stream_pos=position)
            )
            self._backoff.pop(pusher.id, None)

    def _back_off(self, pusher: PusherRow) -> None:
        previous = self._backoff.get(pusher.id)
        delay = self.initial_backoff_s if previous is None else min(previous[1] * 2, MAX_BACKOFF_S)
        self._backoff[pusher.id] = (time.monotonic() + delay, delay, pusher.user_id)
        self._wake.set()  # the loop recomputes when to wake

    async def _remove(self, pusher: PusherRow) -> None:
        log.info(
            "push gateway rejected pushkey of %s (%s): pusher removed",
            pusher.user_id,
            pusher.app_id,
        )
        hook = self.hook

        def remove(conn: apsw.Connection) -> None:
            store.delete_by_id(conn, pusher.id)
            if not store.has_pushers(conn, pusher.user_id):
                hook.users_with_pushers.discard(pusher.user_id)

        await self.db.write(remove)
        self._backoff.pop(pusher.id, None)

    async def _send(self, pusher: PusherRow, notification: NotificationRow, batch: _Batch) -> str:
        url = pusher.data.get("url")
        if not isinstance(url, str):
            return "failed"
        body = msgspec.json.encode(payload(pusher, notification, batch))
        return await self._post(pusher, url, body)

    async def _post(self, pusher: PusherRow, url: str, body: bytes) -> str:
        try:
            response = await self.client.post_json(url, body)
        except OutboundError as exc:
            log.warning("push to %s for %s failed: %s", url, pusher.user_id, exc)
            return "failed"
        if not 200 <= response.status < 300:
            log.warning("push gateway %s answered %d", url, response.status)
            return "failed"
        try:
            rejected = msgspec.json.decode(response.body).get("rejected", [])
        except (msgspec.DecodeError, AttributeError):
            rejected = []
        if isinstance(rejected, list) and pusher.pushkey in rejected:
            return "rejected"
        return "ok"


def _record_failure(
    conn: apsw.Connection, pusher_id: int, position: int, failing_since: int
) -> None:
    conn.execute(
        "UPDATE pushers SET last_stream_pos = max(last_stream_pos, ?), failing_since = ?"
        " WHERE id = ?",
        (position, failing_since, pusher_id),
    )


def _load_badges(
    conn: apsw.Connection, user_ids: set[str]
) -> tuple[list[PusherRow], dict[str, int]]:
    pushers = store.for_users(conn, user_ids)
    unread = {user_id: notification_store.total_unread(conn, user_id) for user_id in user_ids}
    return pushers, unread


def _device(pusher: PusherRow, tweaks: dict[str, Any]) -> dict[str, Any]:
    return {
        "app_id": pusher.app_id,
        "pushkey": pusher.pushkey,
        "pushkey_ts": pusher.pushkey_ts // 1000,
        "data": {k: v for k, v in pusher.data.items() if k != "url"},
        "tweaks": tweaks,
    }


def badge_payload(pusher: PusherRow, unread: int) -> dict[str, Any]:
    """A notification with only the counts: the app updates its badge, shows nothing."""
    return {
        "notification": {
            "counts": {"unread": unread},
            "prio": "low",
            "devices": [_device(pusher, {})],
        }
    }


def _load_batch(conn: apsw.Connection, pusher_id: int, after: int) -> _Batch:
    pusher = store.get(conn, pusher_id)
    if pusher is None:
        return _Batch(None, [], 0, {}, {}, {})
    rows = notification_store.pending(conn, pusher.user_id, after, BATCH)
    unread = notification_store.total_unread(conn, pusher.user_id) if rows else 0
    names: dict[tuple[str, str], str] = {}
    room_names: dict[str, str] = {}
    aliases: dict[str, str] = {}
    if rows and pusher.data.get("format") != "event_id_only":
        for row in rows:
            room_id, sender = row.room_id, row.event.sender
            if (room_id, sender) not in names:
                name = _state_content(conn, room_id, "m.room.member", sender).get("displayname")
                if isinstance(name, str):
                    names[(room_id, sender)] = name
            if room_id not in room_names:
                room_name = _state_content(conn, room_id, "m.room.name", "").get("name")
                room_names[room_id] = room_name if isinstance(room_name, str) else ""
                alias = _state_content(conn, room_id, "m.room.canonical_alias", "").get("alias")
                if isinstance(alias, str):
                    aliases[room_id] = alias
    return _Batch(pusher, rows, unread, names, room_names, aliases)


def _state_content(
    conn: apsw.Connection, room_id: str, type_: str, state_key: str
) -> dict[str, Any]:
    nid = room_state.current_entry(conn, room_id, type_, state_key)
    if nid is None:
        return {}
    row = get_by_nids(conn, [nid]).get(nid)
    if row is None:
        return {}
    content = msgspec.json.decode(row.client).get("content")
    return content if isinstance(content, dict) else {}


def payload(pusher: PusherRow, notification: NotificationRow, batch: _Batch) -> dict[str, Any]:
    """The /_matrix/push/v1/notify body for one notification and one pusher."""
    event = notification.event
    tweaks = Outcome.of(msgspec.json.decode(notification.actions)).tweaks
    high = event.type == "m.room.encrypted" or bool(tweaks.get("highlight") or tweaks.get("sound"))
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "room_id": notification.room_id,
        "counts": {"unread": batch.unread} if batch.unread else {},
        "prio": "high" if high else "low",
        "devices": [_device(pusher, tweaks)],
    }
    if pusher.data.get("format") == "event_id_only":
        return {"notification": body}
    client = msgspec.json.decode(event.client)
    body["type"] = event.type
    body["sender"] = event.sender
    if isinstance(client.get("content"), dict):
        body["content"] = client["content"]
    name = batch.display_names.get((notification.room_id, event.sender))
    if name:
        body["sender_display_name"] = name
    if batch.room_names.get(notification.room_id):
        body["room_name"] = batch.room_names[notification.room_id]
    if notification.room_id in batch.room_aliases:
        body["room_alias"] = batch.room_aliases[notification.room_id]
    if event.type == "m.room.member":
        body["user_is_target"] = event.state_key == pusher.user_id
    return {"notification": body}
