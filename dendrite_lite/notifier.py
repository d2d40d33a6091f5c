"""Wakes long-polls: services tell it which users a change concerns.

In memory on purpose: a long-poll only waits for things that happen while it waits.
Every notification takes the next tick of a counter, and each user's latest tick is
remembered; a sync notes the tick before it reads, so a change that lands between its
read and its wait wakes it at once instead of being missed. Ephemeral changes (typing,
presence) use it too, though they have no stream position.

Time limits: every waiting long-poll's deadline goes into one heap, served by one timer
set for the earliest. An `asyncio.timeout` per wait made a timer handle, a task lookup
and a heap entry in the loop's own schedule for each of a big room's hundred re-polls,
and cancelled them all again a second later (a wait and its wake-up, task included:
12.5 µs with it, 7.4 µs without, bench/RESULTS.md). Entries of answered waits stay in
the heap until the timer next fires (it drops those at the top unseen), or until the heap
has doubled since it was last compacted: a 30 s timer would otherwise let a busy
server's answered waits pile up for 30 s.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import math
from collections.abc import Awaitable, Iterable
from typing import Protocol

# A notification that wakes more long-polls than this is a fan-out (a big room's message):
# the answers it causes are computed after other work (storage/db.py's background lane),
# so that a DM sent meanwhile is not queued behind a hundred of them.
FAN_OUT = 16
# Long-polls one user may have waiting (Element X holds three per device). Beyond it the
# oldest is answered at once with what it has: a client that reconnects in a loop without
# closing its old requests cannot pile up waiting requests without bound.
MAX_WAITING_PER_USER = 32
# The deadline heap is compacted (answered waits dropped) when it reaches this size, or
# twice its size after the last compaction.
MIN_COMPACT = 1024


class Departure:
    """Whether the client a long-poll answers is still there.

    uvicorn lets a request's task run on after its client has gone, so a long-poll whose
    client dropped the connection (a phone changing networks, a client reconnecting in a
    loop) kept waiting until its timeout, up to 5 minutes: its memory, its task and its
    place among the user's MAX_WAITING_PER_USER (~16 KiB each; 2,000 dropped ones held
    ~32 MiB, bench/RESULTS.md). The HTTP layer marks the request's departure when the
    connection goes (http_protocol.py), and a wait in its context then ends at once, as
    if its time had run out; the answer goes nowhere."""

    __slots__ = ("_waiter", "gone")

    def __init__(self) -> None:
        self.gone = False
        self._waiter: asyncio.Future[int] | None = None

    def watch(self, waiter: asyncio.Future[int]) -> None:
        """`waiter` (the request's wait now) gets 0 when the client leaves."""
        self._waiter = waiter

    def leave(self) -> None:
        self.gone = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(0)


# Set in a long-poll's task by the HTTP layer (http_protocol.watch_departure, called by
# api/middleware.py for the paths ending in /sync: legacy sync and both sliding syncs).
departure: contextvars.ContextVar[Departure | None] = contextvars.ContextVar(
    "departure", default=None
)


class WritePriority(Protocol):
    """storage/db.Database: whether a foreground write is under way, and its end."""

    def writes_pending(self) -> bool: ...

    def writes_passed(self) -> Awaitable[None]: ...


class Notifier:
    def __init__(self, priority: WritePriority | None = None) -> None:
        # A fan-out's wake-ups wait while a foreground write is under way: a hundred
        # long-polls waking at once kept the event loop busy for milliseconds, beside
        # the DM being written (storage/db.Database.writes_passed).
        self.priority = priority
        self._deferred: set[asyncio.Task[None]] = set()
        self.position = 0
        self.tick = 0
        self._latest: dict[str, int] = {}
        # user -> their waiting long-polls, oldest first (a dict as an ordered set)
        self._waiters: dict[str, dict[asyncio.Future[int], None]] = {}
        # (deadline on the loop's clock, tie-breaker, waiter); the timer is set for the
        # earliest deadline of a waiter still waiting, at `_timer_at`.
        self._deadlines: list[tuple[float, int, asyncio.Future[int]]] = []
        self._order = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._compact_at = MIN_COMPACT
        self._stopped = False

    @property
    def active(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())

    def notify(self, user_ids: Iterable[str], position: int | None = None) -> None:
        if position is not None:
            self.position = max(self.position, position)
        self.tick += 1
        woken: list[asyncio.Future[int]] = []
        for user_id in user_ids:
            self._latest[user_id] = self.tick
            woken.extend(self._waiters.get(user_id, ()))
        if len(woken) > FAN_OUT and self.priority is not None and self.priority.writes_pending():
            task = woken[0].get_loop().create_task(self._wake_later(woken, self.priority))
            self._deferred.add(task)
            task.add_done_callback(self._deferred.discard)
            return
        _wake(woken)

    @staticmethod
    async def _wake_later(woken: list[asyncio.Future[int]], priority: WritePriority) -> None:
        await priority.writes_passed()
        _wake(woken)

    def stop_waiting(self) -> None:
        """The server is stopping: every long-poll answers now, as if its time ran out,
        and new ones do not wait. uvicorn waits for requests in flight before it stops
        (10 s at most), so a client's 30 s long-poll held `systemctl stop` for those
        10 s."""
        self._stopped = True
        for waiters in list(self._waiters.values()):
            for waiter in list(waiters):
                if not waiter.done():
                    waiter.set_result(0)

    def changed_since(self, user_id: str, tick: int) -> bool:
        return self._latest.get(user_id, 0) > tick

    async def wait(self, user_id: str, timeout_s: float, after_tick: int | None = None) -> int:
        """Wait until a change concerns `user_id` (after `after_tick`) or time runs out.

        0 if time ran out; otherwise how many long-polls the waking notification woke
        (1 if a change after `after_tick` had already happened), so that the caller can
        tell a fan-out from a change of its own.
        """
        if after_tick is not None and self.changed_since(user_id, after_tick):
            return 1
        client = departure.get()
        if self._stopped or (client is not None and client.gone):
            return 0
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        if client is not None:
            client.watch(waiter)
        waiting = self._waiters.setdefault(user_id, {})
        if len(waiting) >= MAX_WAITING_PER_USER:
            oldest = next(iter(waiting))
            del waiting[oldest]
            if not oldest.done():
                oldest.set_result(0)
        waiting[waiter] = None
        self._time_limit(loop, waiter, loop.time() + timeout_s)
        try:
            return await waiter
        finally:
            waiters = self._waiters.get(user_id)
            if waiters is not None:
                waiters.pop(waiter, None)
                if not waiters:
                    del self._waiters[user_id]

    def _time_limit(
        self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[int], deadline: float
    ) -> None:
        if loop is not self._loop:  # a new loop (tests): the old one's waits are gone
            if self._timer is not None:
                self._timer.cancel()
            self._loop, self._timer, self._timer_at = loop, None, math.inf
            self._deadlines.clear()
        heapq.heappush(self._deadlines, (deadline, next(self._order), waiter))
        if len(self._deadlines) >= self._compact_at:
            self._deadlines = [entry for entry in self._deadlines if not entry[2].done()]
            heapq.heapify(self._deadlines)
            self._compact_at = max(MIN_COMPACT, 2 * len(self._deadlines))
        if deadline < self._timer_at:
            self._set_timer(loop, deadline)

    def _set_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._expire, loop), when

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Time is up for every waiter whose deadline has passed: it gets 0."""
        self._timer, self._timer_at = None, math.inf
        deadlines, now = self._deadlines, loop.time()
        while deadlines and (deadlines[0][0] <= now or deadlines[0][2].done()):
            waiter = heapq.heappop(deadlines)[2]
            if not waiter.done():
                waiter.set_result(0)
        if deadlines:
            self._set_timer(loop, deadlines[0][0])


def _wake(woken: list[asyncio.Future[int]]) -> None:
    # A waiter may have timed out, or been answered by a later notification, meanwhile.
    for waiter in woken:
        if not waiter.done():
            waiter.set_result(len(woken))
