"""The storage engine: one WAL-mode SQLite file, one writer thread, a few reader threads.

Callers hand whole units of work to the engine (``await db.read(fn)`` /
``await db.write(fn)``), where ``fn(conn)`` runs every query of that unit on the
database thread: one executor hop per unit of work, never one per query.

All writes go through ONE thread (SQLite has one writer anyway; this removes
SQLITE_BUSY). Writes that are queued together are committed together (group commit):
each runs inside its own SAVEPOINT, so a failing unit rolls back alone, and the batch
pays for one fsync. A write's future resolves only after that fsync, so an acknowledged
write survives power loss with ``synchronous=FULL``.

With ``synchronous=FULL`` the writer commits as NORMAL and then flushes the WAL file
itself (fdatasync), the same durability SQLite's FULL gives, with the flush moved after
the commit: the data is visible to readers while the disk flushes (0.5-1 ms after
idleness, the CPU idle meanwhile). A write's ``on_commit`` callback runs on the event
loop at that point, so the long-polls a message wakes compute their answers during the
flush instead of after it. No answer may reveal what is not durable yet, so every read's
outcome is held until the commits it may have seen are flushed (``_visible`` is raised
just before each COMMIT, ``_durable`` after its flush; a read notes ``_visible`` once its
snapshot is taken, so a read that began before a commit does not wait for its flush). A
power cut then loses nothing anybody was told about.

When another write is already waiting, the flush is handed to a thread of its own (the
flusher) and the writer goes on to the next batch while the disk flushes the last: a DM
sent just after a message into a big room commits during that message's flush instead of
after it. The flusher takes every commit handed to it since its last flush, flushes once
for all of them (each was written to the WAL before the flush began), and then tells
their outcomes in commit order. With nothing waiting, the writer flushes itself, as a
hand-over would only add a thread's wake-up to a lone message's path.

A client's read that arrived before its write sees the database as it was before that
write and is answered before the write is acknowledged (``arrival_key`` names the client
of the current request; other clients' reads are not waited for). The writer waits,
``ARRIVAL_WAIT_S`` at most each time, before a COMMIT until such reads have taken their
snapshots, and before telling the outcome until they are answered. A reader may
otherwise need the GIL for a few milliseconds while the event loop works through the
write's request. matrix-js-sdk fetches a thread's root just before it sends a reply into
the thread, and miscounts the thread's replies if the root's summary already has the
reply, or if the answer comes after the reply's acknowledgement. The other way round,
a client's write is acknowledged before its own reads that saw it are answered (its
long-poll must not show its message before its PUT is answered), while other clients'
reads that saw it do not wait for that acknowledgement.

WAL checkpoints run on a thread of their own, not inside the commit that happens to
cross the threshold: copying pages back into the database file and fsyncing it would
otherwise land on one unlucky writer's latency every few hundred writes. And they start
CHECKPOINT_DELAY_S after that commit: on one core, a checkpoint started at once shared
it with the very delivery that asked for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import itertools
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import apsw

from dendrite_lite import fan_out
from dendrite_lite.storage import migrations, snapshot

T = TypeVar("T")
log = logging.getLogger(__name__)

Connection = apsw.Connection


class DatabaseClosed(Exception):
    pass


class GiveWay(BaseException):
    """Raised by Database.give_way inside a write unit; the writer rolls the unit back
    and runs it again after the writes it gave way to. A BaseException: the unit's own
    `except Exception` handlers (push never fails a send) must not catch it."""


class WriteObserver(Protocol):
    def observe_commit(self, seconds: float, batch_size: int) -> None: ...


@dataclass(frozen=True)
class DatabaseSettings:
    synchronous: str = "FULL"
    reader_threads: int = 3
    cache_size_kib: int = 1024
    mmap_size_mib: int = 0
    max_batch: int = 256
    checkpoint_pages: int = 1000  # as SQLite's wal_autocheckpoint default


@dataclass
class _Job:
    """A unit of work for the writer or a reader, and whom to tell its outcome."""

    fn: Callable[[apsw.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    on_commit: Callable[[Any], None] | None = None
    # A read's number in arrival order; a write's: the reads that arrived before it.
    ticket: int = 0
    key: str | None = None  # the client's (arrival_key), None: no order kept
    # A foreground write's number in arrival order; for one that gave way, the last
    # write it gave way to (see Database.give_way).
    order: int = 0
    may_give_way: bool = False
    gave_way: bool = False


_Outcome = tuple[asyncio.Future[Any], bool, Any]
_Held = tuple[asyncio.AbstractEventLoop, list[_Outcome], int, str | None]


@dataclass
class _Committed:
    """A batch the writer is done with, waiting for its flush (if it needs one) before
    its outcomes are told."""

    seq: int
    batch: list[_Job]
    outcomes: list[tuple[bool, Any]]
    needs_flush: bool
    started: float


# The client on whose behalf the current task reads and writes (set once its access
# token is checked): the arrival order of the module docstring is kept between the
# requests of one client.
arrival_key: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "arrival_key", default=None
)

_STOP = object()
# Background reads answered together (one transaction, one loop wake-up). A 100-client
# fan-out (bench/bench_fanout.py): batches of 32 gave p95 58 ms and 61 ms of CPU per
# message, of 8 73 ms and 75 ms, one at a time 84 ms and 86 ms (third session). With
# batches of 32 the members answered first polled again while the next batch was read,
# and their ~0.3 ms each of request handling shared the one core with it; all of a
# fan-out in one batch avoided that but made every member wait for the last read
# (fourteenth session). Now the connections a fan-out answered are not read from until
# its last answer is out (dendrite_lite/fan_out.py), and batches of 32 are back: first
# recipient p50 ~57 -> ~31 ms, p50 ~69 -> ~55 ms, p95 the same (~90 ms, fifteenth
# session).
BACKGROUND_READ_BATCH = 32
# The longest a background read unit steps aside for foreground writes (see
# Database._let_the_writes_pass).
WRITE_PRIORITY_S = 0.02
# The longest a background write waits for a fan-out's reads to be over (see
# Database.write_soon).
BACKGROUND_WRITE_DELAY_S = 0.1
# The longest a commit waits for reads that arrived before its writes to take their
# snapshots (see the module docstring). Readers normally start within a millisecond;
# the bound keeps a reader starved of the CPU from holding writes back.
ARRIVAL_WAIT_S = 0.005
# How long a checkpoint waits after the commit that made the WAL long enough (see
# Database._checkpointer_main). A delivery takes a few milliseconds, a fan-out tens.
CHECKPOINT_DELAY_S = 0.1
# fdatasync flushes a file's data and what is needed to read it back (its size), which is
# what a commit in the WAL needs; macOS has only fsync.
_flush = getattr(os, "fdatasync", os.fsync)


def connect(
    path: Path | str,
    settings: DatabaseSettings,
    *,
    readonly: bool = False,
    synchronous: str | None = None,
) -> apsw.Connection:
    flags = (
        apsw.SQLITE_OPEN_READONLY
        if readonly
        else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    )
    conn = apsw.Connection(str(path), flags=flags, statementcachesize=256)
    # SQLite re-prepares a cached statement whenever a parameter its plan may depend on
    # is bound again, and with this build (STAT4) that is every `col = ?` beside an ORDER
    # BY or GROUP BY: most of our reads paid a parse and a plan each time (~6-15 us, and
    # the parser showed up in perf of a fan-out). The query planner stability guarantee
    # keeps one plan per statement; our plans never depend on values (no ANALYZE data,
    # no LIKE). A woken /sync read in-process: 0.33 -> 0.20 ms (fifteenth session).
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_QPSG, 1)
    conn.setbusytimeout(10_000)
    if not readonly:
        conn.pragma("journal_mode", "wal")
    conn.pragma("synchronous", synchronous or settings.synchronous)
    conn.pragma("foreign_keys", True)
    conn.pragma("temp_store", "memory")
    conn.pragma("cache_size", -settings.cache_size_kib)
    conn.pragma("mmap_size", settings.mmap_size_mib * 1024 * 1024)
    return conn


class Database:
    """Owns the threads and connections; see the module docstring."""

    def __init__(
        self,
        path: Path | str,
        settings: DatabaseSettings | None = None,
        observer: WriteObserver | None = None,
    ) -> None:
        self.path = Path(path)
        self.settings = settings or DatabaseSettings()
        self.observer = observer
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        # Reads: a queue and a few threads of our own rather than a ThreadPoolExecutor
        # with wrap_future/_chain_future: every request makes at least one read, and
        # the executor's bookkeeping showed up in profiles under load.
        self._read_queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        # Background work is what a big room's fan-out causes (the answers of a hundred
        # long-polls, sliding sync positions); it must not hold back a DM sent meanwhile.
        # Background reads have a queue and one thread of their own, so the other readers
        # stay free and a fan-out never has more than one thread competing for the GIL
        # with the event loop. Background writes wait in a lane the writer takes only
        # when no other write waits (its queue carries one token per write).
        self._background_reads: queue.SimpleQueue[object] = queue.SimpleQueue()
        # Background reads asked for and not yet returned to their callers (event loop
        # only), and what waits for there to be none (hold_until_background_idle): a
        # dict, so that a connection held again while fan-outs follow each other is
        # there once, and what waits stays bounded by the connections.
        self._background_outstanding = 0
        self._background_idle: dict[fan_out.Release, None] = {}
        # Background writes asked for while background reads were outstanding (event
        # loop only), queued for the writer once there are none (write_soon).
        self._deferred_writes: list[_Job] = []
        self._deferred_deadline: asyncio.TimerHandle | None = None
        self._writes = (collections.deque[_Job](), collections.deque[_Job]())
        # Foreground writes numbered as they are queued, and the writes that gave way
        # (give_way), each waiting for its turn with a token of its own in _queue.
        self._write_numbers = itertools.count(1)
        self._written = 0  # the number of the newest foreground write queued
        self._gave_way = collections.deque[_Job]()
        # The unit the writer runs now, its batch and its place there (writer thread).
        self._unit: _Job | None = None
        self._batch: list[_Job] = []
        self._unit_index = 0
        self._readers: list[threading.Thread] = []
        # The connection of short reads run on the caller's own thread (read(short=True)),
        # and the lock that keeps two threads from using it at once.
        self._here: apsw.Connection | None = None
        self._here_lock = threading.Lock()
        self._closed = True
        self._commit_listeners: list[Callable[[apsw.Connection], None]] = []
        self._checkpoint_wanted = threading.Event()
        self._checkpointer: threading.Thread | None = None
        # FULL durability by a flush of our own after each durable commit (see the
        # module docstring); other levels are left to SQLite.
        self._flushes_wal = self.settings.synchronous == "FULL"
        self._wal_path = f"{self.path}-wal"
        self._wal_fd: int | None = None  # the writer thread's
        # Commits numbered: raised before a COMMIT (an upper bound on what a reader may
        # see), and after its flush. Reads that may have seen more than is durable wait
        # in _held; all three are guarded by _durable_lock.
        self._visible = 0
        self._durable = 0
        self._durable_lock = threading.Lock()
        # (loop, outcomes, the commits the read may have seen, its client's arrival_key)
        self._held: list[_Held] = []
        # By client (arrival_key): its writes committed (numbered) whose outcomes its
        # loop has not resolved yet. Its reads are answered after them (_tell); other
        # clients' reads need not wait for them.
        self._untold: dict[str, int] = {}
        # Batches committed and not yet told, for the flusher (FULL only), in commit order.
        self._committed: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._flusher: threading.Thread | None = None
        self._with_flusher = 0  # batches handed to it and not yet told (_durable_lock)
        # Arrival order (module docstring): foreground reads numbered as they are queued,
        # where each is, and how many threads wait on them; guarded by _arrivals.
        self._arrivals = threading.Condition(threading.Lock())
        self._reads_queued = 0
        # Each by client (arrival_key): the reads not taken by a reader yet, taken and
        # without a snapshot yet, taken and not answered yet.
        self._queued_reads: dict[str, set[int]] = {}
        self._unstarted_reads: dict[str, set[int]] = {}
        self._running_reads: dict[str, set[int]] = {}
        self._idle_readers = self.settings.reader_threads
        self._order_waiters = 0
        # A foreground write in progress (the writer thread's): background reads step
        # aside for it (_let_the_writes_pass).
        self._writing = False
        self._write_done = threading.Condition(threading.Lock())
        # Event loops whose background work waits for the foreground writes to pass
        # (writes_passed), each with the event the writer sets when they have.
        self._passing: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}
        self._passing_lock = threading.Lock()

    def add_commit_listener(self, listener: Callable[[apsw.Connection], None]) -> None:
        """Run `listener(conn)` on the writer thread after every commit.

        For in-memory caches kept by the writer (DESIGN.md): they look at what the
        commit changed and drop what went stale before the writers' callers hear back.
        """
        self._commit_listeners.append(listener)

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> None:
        """Open (and migrate) the database, then start the writer and reader threads."""
        ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._writer_main, args=(ready,), name="db-writer", daemon=True
        )
        self._writer.start()
        error = ready.get()
        if error is not None:
            self._writer.join()
            raise error
        # The other threads' connections are opened here, before open() returns: a
        # thread that connected later could find the database changed under it (and
        # an opening connection makes a WAL file anew if it is missing).
        self._readers = [
            threading.Thread(
                target=self._reader_main,
                args=(connect(self.path, self.settings),),
                name=f"db-reader_{n}",
                daemon=True,
            )
            for n in range(self.settings.reader_threads)
        ]
        self._readers.append(
            threading.Thread(
                target=self._background_reader_main,
                args=(connect(self.path, self.settings),),
                name="db-reader-background",
                daemon=True,
            )
        )
        for reader in self._readers:
            reader.start()
        self._here = connect(self.path, self.settings)
        self._closed = False
        self._checkpointer = threading.Thread(
            target=self._checkpointer_main,
            args=(connect(self.path, self.settings),),
            name="db-checkpointer",
            daemon=True,
        )
        self._checkpointer.start()

    def close(self) -> None:
        """Finish every queued write, then stop the threads and close the connections."""
        if self._closed:
            return
        self._closed = True
        self._queue_deferred_writes()
        self._queue.put(_STOP)
        if self._writer is not None:
            self._writer.join()
        self._checkpoint_wanted.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        for _ in range(self.settings.reader_threads):
            self._read_queue.put(_STOP)  # after the reads already queued
        self._background_reads.put(_STOP)
        for reader in self._readers:
            reader.join()
        self._readers = []
        with self._here_lock:
            if self._here is not None:
                self._here.close()
                self._here = None

    # -- units of work ---------------------------------------------------------------

    async def read(
        self,
        fn: Callable[[apsw.Connection], T],
        *,
        background: bool = False,
        short: bool = False,
    ) -> T:
        """Run ``fn(conn)`` in one read transaction (a consistent snapshot); background
        reads wait until no other read is queued.

        A `short` read (the caller knows it is small, such as a woken long-poll's
        increment) runs on the calling thread, the event loop, and not on a reader
        thread. A delivery's read went to a reader and its outcome came back: two thread
        wake-ups and GIL hand-offs on the one core the server shares (deliveries 4.5 %
        sooner and 6 % less CPU without them, bench/RESULTS.md, eighteenth session). A
        reader holds the GIL while it runs Python anyway, so the loop loses little."""
        if self._closed:
            raise DatabaseClosed("database is closed")
        loop = asyncio.get_running_loop()
        if background:
            return await self._background_read(fn, loop)
        if short and self._here_lock.acquire(blocking=False):
            try:
                outcome, seen = self._read_here(fn)
            finally:
                self._here_lock.release()
            key = arrival_key.get()
            if key is not None and self._may_answer_now(key, seen):
                # Nothing it saw waits for its flush, and none of its client's writes
                # waits to be told: the answer goes now, not behind the outcome of the
                # write that woke it (another client's PUT, which that client waits
                # for, not this one).
                ok, value = outcome
                if ok:
                    return cast(T, value)
                raise value
            future: asyncio.Future[T] = loop.create_future()
            # Held, or through the loop's queue: the outcome of its own client's write
            # may wait there already, and a sender must hear back before its long-poll
            # shows the event (_tell).
            self._answer_read(loop, [(future, *outcome)], seen, key)
            return await future
        future = loop.create_future()
        key = arrival_key.get()
        if key is None:
            self._read_queue.put(_Job(fn, future, loop))
        else:
            with self._arrivals:
                self._reads_queued += 1
                ticket = self._reads_queued
                self._queued_reads.setdefault(key, set()).add(ticket)
            self._read_queue.put(_Job(fn, future, loop, ticket=ticket, key=key))
        return await future

    def _read_here(self, fn: Callable[[apsw.Connection], T]) -> tuple[tuple[bool, Any], int]:
        """`fn` on this thread's connection (`_read_on`).

        No arrival order to keep: the snapshot is taken now, before any write the
        client asks for later is queued."""
        conn = self._here
        if conn is None:
            raise DatabaseClosed("database is closed")
        return self._read_on(conn, fn)

    def _read_on(
        self, conn: apsw.Connection, fn: Callable[[apsw.Connection], T], job: _Job | None = None
    ) -> tuple[tuple[bool, Any], int]:
        """`fn(conn)` in one read transaction: (ok, result or exception) and the commits
        it may have seen. A queued `job` is marked started once its snapshot is taken
        (or could not be)."""
        self._let_the_flush_start()
        seen = self._visible
        try:
            try:
                seen = self._begin_read(conn)
            finally:
                if job is not None:
                    self._started(job)
            try:
                # One unit may repeat a read too (a sliding sync answer asks for the
                # rooms with events since the same position twice).
                with snapshot.shared(conn):
                    outcome: tuple[bool, Any] = (True, fn(conn))
            finally:
                conn.execute("COMMIT")
        except Exception as exc:
            outcome = (False, exc)
        return outcome, seen

    async def _background_read(
        self, fn: Callable[[apsw.Connection], T], loop: asyncio.AbstractEventLoop
    ) -> T:
        self._background_outstanding += 1
        try:
            if self.writes_pending():
                await self.writes_passed()
            future: asyncio.Future[T] = loop.create_future()
            self._background_reads.put(_Job(fn, future, loop))
            result = await future
            if self.writes_pending():
                await self.writes_passed()
        finally:
            self._background_outstanding -= 1
            if not self._background_outstanding:
                self._queue_deferred_writes()
                if self._background_idle:
                    released, self._background_idle = self._background_idle, {}
                    for release in released:
                        release()
        # The request this read answers holds its connection's next one (fan_out.py).
        fan_out.answered_by_fan_out.set(self.hold_until_background_idle)
        return result

    def hold_until_background_idle(self, release: fan_out.Release) -> bool:
        """On the event loop: call `release` once no background read is outstanding;
        False (and no call) if none is now."""
        if not self._background_outstanding:
            return False
        self._background_idle[release] = None
        return True

    async def write(
        self,
        fn: Callable[[apsw.Connection], T],
        *,
        background: bool = False,
        on_commit: Callable[[T], None] | None = None,
        may_give_way: bool = False,
    ) -> T:
        """Run ``fn(conn)`` on the writer thread; returns once it is durably committed.

        ``on_commit(result)`` runs on the event loop as soon as the unit is committed,
        before the flush that makes it durable: for waking the long-polls it concerns,
        whose reads then overlap the flush (their answers still wait for it).

        Background writes are committed with other work only when none is waiting, and
        without an fsync of their own: they are for what may be lost to a power cut (a
        sliding sync connection's saved state; the client starts over), never for what
        a client was told is saved. The next durable commit's fsync covers them too,
        and a crash of the process alone loses nothing.

        ``may_give_way``: the unit may call `give_way` (it can run again from the start,
        and changes nothing but the database before it commits)."""
        if self._closed:
            raise DatabaseClosed("database is closed")
        return await self._queue_write(fn, background, on_commit, may_give_way)

    def write_soon(self, fn: Callable[[apsw.Connection], T]) -> asyncio.Future[T]:
        """A background write (see `write`) that nobody awaits: its future, to look at
        when it is done. On the event loop, without a task of its own: sliding sync's
        connection saves (sliding_sync/saving.py) queue several at once."""
        if self._closed:
            closed: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            closed.set_exception(DatabaseClosed("database is closed"))
            return closed
        if not self._background_outstanding:
            return self._queue_write(fn, True, None, False)
        # A fan-out's reads are under way: its answers are what the members wait for,
        # and on one core every background batch the writer commits meanwhile pushes
        # the last answers back by its CPU time (when each answer wrote its sliding
        # sync position: 4-13 ms of a 100-client fan-out, bench/RESULTS.md, seventeenth
        # session). The write waits until the reads are over (the fan-out's connections
        # are held until then too, fan_out.py), BACKGROUND_WRITE_DELAY_S at most, in
        # the order it was asked for.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._deferred_writes.append(_Job(fn, future, loop))
        if self._deferred_deadline is None:
            self._deferred_deadline = loop.call_later(
                BACKGROUND_WRITE_DELAY_S, self._queue_deferred_writes
            )
        return future

    def _queue_deferred_writes(self) -> None:
        """Hand the background writes write_soon held back to the writer, in order."""
        if self._deferred_deadline is not None:
            self._deferred_deadline.cancel()
            self._deferred_deadline = None
        deferred, self._deferred_writes = self._deferred_writes, []
        background = self._writes[1]
        for job in deferred:
            background.append(job)
            self._queue.put(None)

    def _queue_write(
        self,
        fn: Callable[[apsw.Connection], T],
        background: bool,
        on_commit: Callable[[T], None] | None,
        may_give_way: bool,
    ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # A background write keeps no order: nobody waits for it, and the writer must
        # not wait on its behalf while a DM queues behind.
        key = None if background else arrival_key.get()
        job = _Job(fn, future, loop, on_commit, self._reads_queued, key)
        job.may_give_way = may_give_way and not background
        if not background:
            job.order = self._written = next(self._write_numbers)
        self._writes[background].append(job)
        self._queue.put(None)
        return future

    def give_way(self) -> None:
        """On the writer thread, inside a unit written with ``may_give_way``: if another
        client's foreground write is waiting (queued, or after this unit in its batch),
        roll this unit back and run it again right after the writes waiting now (once:
        the second run goes to its end).

        A message into a 500-member room spends milliseconds recording its members'
        notifications, and a DM sent meanwhile waited for all of it (bench/RESULTS.md,
        twelfth session). The unit calls this where it may stop: what it did so far is
        lost, but it commits with its members' counts, as the spec wants, just later."""
        job = self._unit
        if job is None or not job.may_give_way or job.gave_way:
            return
        # The writes queued, and those after this unit in its own batch (they commit in
        # this batch, without it). list(): the loop may append meanwhile.
        waiting = [*self._batch[self._unit_index + 1 :], *list(self._writes[0])]
        if not waiting:
            return
        # One client's writes keep their order.
        if job.key is not None and any(other.key == job.key for other in waiting):
            return
        job.gave_way = True
        job.order = self._written
        raise GiveWay

    # -- reader side -----------------------------------------------------------------

    def _reader_main(self, conn: apsw.Connection) -> None:
        jobs = self._read_queue
        try:
            while True:
                job = jobs.get()
                if job is _STOP:
                    break
                assert isinstance(job, _Job)
                self._taken(job)
                try:
                    outcome, seen = self._read_on(conn, job.fn, job)
                except BaseException as exc:  # not an Exception: still its caller's answer
                    outcome, seen = (False, exc), self._visible
                self._answer_read(job.loop, [(job.future, *outcome)], seen, job.key)
                self._finished(job)
                # Not kept while idle: the job's future holds its answer, and a legacy
                # initial /sync's is megabytes of objects (~5 MiB for 500 rooms), kept
                # alive per reader thread until its next read (bench/RESULTS.md,
                # twenty-first session).
                del job, outcome
        finally:
            conn.close()

    def _background_reader_main(self, conn: apsw.Connection) -> None:
        """Background reads, taken a few at a time: the units queued together share one
        read transaction (they all want the state the fan-out's commit made) and one
        wake-up of the event loop for their outcomes."""
        jobs = self._background_reads
        stopping = False
        try:
            while not stopping:
                first = jobs.get()
                if first is _STOP:
                    break
                self._let_the_flush_start()
                batch = [first]
                stopping = _take_more(jobs, batch, BACKGROUND_READ_BATCH)
                self._background_batch(conn, [job for job in batch if isinstance(job, _Job)])
                del first, batch  # not kept while idle (as in _reader_main)
        finally:
            conn.close()

    def _background_batch(self, conn: apsw.Connection, jobs: list[_Job]) -> None:
        """One batch of background reads in one read transaction (its outcomes go with
        this frame: nothing keeps a fan-out's answers while the thread waits)."""
        results: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        seen = self._visible
        try:
            seen = self._begin_read(conn)
        except apsw.Error as exc:  # every unit of the batch fails with it
            for job in jobs:
                results.setdefault(job.loop, []).append((job.future, False, exc))
        else:
            with snapshot.shared(conn):  # one snapshot: the units share its reads
                for job in jobs:
                    self._let_the_writes_pass()
                    try:
                        outcome = (True, job.fn(conn))
                    except BaseException as exc:
                        outcome = (False, exc)
                    results.setdefault(job.loop, []).append((job.future, *outcome))
            with contextlib.suppress(apsw.Error):
                conn.execute("COMMIT")  # a read transaction: nothing to lose
        for loop, outcomes in results.items():
            self._answer_read(loop, outcomes, seen)

    def _let_the_writes_pass(self) -> None:
        """Before a background unit: wait while a foreground write is queued or being
        written (WRITE_PRIORITY_S at most).

        The server has one core to share. A big room's fan-out keeps the event loop and
        this thread busy for tens of milliseconds, and a DM written meanwhile got a third
        of the CPU: its 1-2 ms of work took 8 ms (bench/bench_fanout.py, traced). The
        answers of the fan-out are each a few milliseconds later instead."""
        if not (self._writing or self._writes[0]):
            return
        deadline = time.monotonic() + WRITE_PRIORITY_S
        with self._write_done:
            while self._writing or self._writes[0]:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._write_done.wait(left)

    def writes_pending(self) -> bool:
        """Whether a foreground write is queued or being written (until its COMMIT)."""
        return self._writing or bool(self._writes[0])

    async def writes_passed(self) -> None:
        """On the event loop: wait while a foreground write is queued or being written
        (WRITE_PRIORITY_S at most). Background reads wait so before and after they run,
        and the notifier before it wakes a fan-out's long-polls.

        The background reader steps aside for writes (_let_the_writes_pass), but the
        event loop did not: a big room's message wakes a hundred long-polls, whose
        wake-ups and answers kept the loop busy for tens of milliseconds, and a DM
        written meanwhile shared the one core with it (bench/RESULTS.md, eleventh
        session). The loop goes on serving everything else; only the fan-out's work
        waits, and the writer lets it go on as soon as its COMMIT is done."""
        loop = asyncio.get_running_loop()
        with self._passing_lock:
            event = self._passing.get(loop)
            if event is None:
                event = self._passing[loop] = asyncio.Event()
                loop.call_later(WRITE_PRIORITY_S, self._stop_waiting, loop, event)
        if not self.writes_pending():  # the writer was done before it saw the event
            self._stop_waiting(loop, event)
        await event.wait()

    def _stop_waiting(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self._passing_lock:
            if self._passing.get(loop) is event:
                del self._passing[loop]
        event.set()

    def _release_waiting_loops(self) -> None:
        """On the writer thread, after a foreground COMMIT with no other foreground write
        queued: the event loops' waiting background work goes on."""
        with self._passing_lock:
            waiting = list(self._passing.items())
            self._passing.clear()
        for loop, event in waiting:
            _post(loop, _set_event, event)

    def _let_the_flush_start(self) -> None:
        """Yield the CPU once before a read that a commit's wake-up may have started.

        The writer lets go of the GIL to flush, and the thread that takes it can preempt
        the writer before its fdatasync has even begun. The scheduler then tends to run
        the fresh reader (0.5-1 ms of work) before the writer, which has just spent a
        millisecond building the event, so the flush followed the read instead of
        overlapping it. One sched_yield gives the writer the CPU to start the flush.
        """
        if self._flushes_wal and self._visible > self._durable:
            os.sched_yield()

    def _may_answer_now(self, key: str, seen: int) -> bool:
        """Whether a read of this client that may have seen `seen` commits can be
        answered without going through its loop's queue."""
        with self._durable_lock:
            return seen <= self._durable and key not in self._untold

    def _answer_read(
        self,
        loop: asyncio.AbstractEventLoop,
        outcomes: list[_Outcome],
        seen: int,
        key: str | None = None,
    ) -> None:
        """Hand a read's outcome to its loop, or hold it until the commits it may have
        seen (`seen`, noted after its transaction) are flushed."""
        with self._durable_lock:
            if seen > self._durable:
                self._held.append((loop, outcomes, seen, key))
                return
        _post(loop, _resolve, outcomes)

    def _release_other_clients(self, seq: int) -> None:
        """Before a flush's outcomes are told: the reads held for it whose clients have
        no write waiting to be told. A recipient's long-poll does not wait for the
        sender's answer (its step on the loop, ~0.2 ms here: bench/RESULTS.md,
        twenty-fourth session)."""
        released: list[_Held] = []
        kept: list[_Held] = []
        with self._durable_lock:
            if not self._held:
                return
            for held in self._held:
                key = held[3]
                mine = held[2] <= seq and key is not None and key not in self._untold
                (released if mine else kept).append(held)
            self._held = kept
        for loop, outcomes, _seen, _key in released:
            _post(loop, _resolve, outcomes)

    def _mark_durable(self, seq: int) -> None:
        # The writer may have numbered later commits already (it does not wait for the
        # flush): reads that may have seen those stay held.
        with self._durable_lock:
            self._durable = max(self._durable, seq)
            released = [held for held in self._held if held[2] <= self._durable]
            if released:
                self._held = [held for held in self._held if held[2] > self._durable]
        for loop, outcomes, _seen, _key in released:
            _post(loop, _resolve, outcomes)

    def _flush_wal(self) -> None:
        """fdatasync the WAL through a descriptor kept open: opening it here would let
        go of the GIL between waking the loop and starting the flush, and the reads the
        wake-up starts would then hold the flush back instead of overlapping it."""
        if self._wal_fd is None:
            self._wal_fd = os.open(self._wal_path, os.O_RDONLY)
        _flush(self._wal_fd)
        if os.fstat(self._wal_fd).st_nlink == 0:
            # The WAL file was deleted and made anew (nothing of ours does that while
            # the writer's connection is open): flush the file in use now.
            os.close(self._wal_fd)
            self._wal_fd = None
            self._wal_fd = os.open(self._wal_path, os.O_RDONLY)
            _flush(self._wal_fd)

    def _begin_read(self, conn: apsw.Connection) -> int:
        """Begin a read transaction with its snapshot taken now (reading the header takes
        it); returns the commits it may see."""
        conn.execute("BEGIN")
        try:
            conn.execute("PRAGMA schema_version").fetchall()
        except BaseException:
            with contextlib.suppress(apsw.Error):
                conn.execute("COMMIT")
            raise
        return self._visible

    # -- arrival order ---------------------------------------------------------------

    def _taken(self, job: _Job) -> None:
        with self._arrivals:
            self._idle_readers -= 1
            if job.key is None:
                return
            _discard(self._queued_reads, job.key, job.ticket)
            self._unstarted_reads.setdefault(job.key, set()).add(job.ticket)
            self._running_reads.setdefault(job.key, set()).add(job.ticket)

    def _started(self, job: _Job) -> None:
        if job.key is None:
            return
        with self._arrivals:
            _discard(self._unstarted_reads, job.key, job.ticket)
            if self._order_waiters:
                self._arrivals.notify_all()

    def _finished(self, job: _Job) -> None:
        """The read's outcome is handed to its loop, or held behind a flush."""
        with self._arrivals:
            self._idle_readers += 1
            if job.key is not None:
                _discard(self._running_reads, job.key, job.ticket)
            if self._order_waiters:
                self._arrivals.notify_all()

    def _earlier_reads(self, reads: dict[str, set[int]], jobs: list[_Job]) -> bool:
        """Whether a read of one of these writes' clients, queued before the write, is in
        `reads` (a reader has it), or is queued while a reader is free to take it. With
        every reader busy, a queued read may wait for long; writes do not wait for it."""
        for job in jobs:
            if job.key is None:
                continue
            mine = reads.get(job.key)
            if mine and min(mine) <= job.ticket:
                return True
            queued = self._queued_reads.get(job.key)
            if self._idle_readers > 0 and queued and min(queued) <= job.ticket:
                return True
        return False

    def _wait_for_earlier_reads(self, jobs: list[_Job], reads: dict[str, set[int]]) -> None:
        """Wait, ARRIVAL_WAIT_S at most, until no read queued before these writes by the
        same client is still in `reads` (module docstring)."""
        if all(job.key is None for job in jobs):
            return
        with self._arrivals:
            if not self._earlier_reads(reads, jobs):
                return
            deadline = time.monotonic() + ARRIVAL_WAIT_S
            self._order_waiters += 1
            try:
                while self._earlier_reads(reads, jobs):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._arrivals.wait(left)
            finally:
                self._order_waiters -= 1

    # -- checkpoints -----------------------------------------------------------------

    def _wal_hook(self, _conn: apsw.Connection, _name: str, pages: int) -> int:
        if pages >= self.settings.checkpoint_pages:
            self._checkpoint_wanted.set()
        return apsw.SQLITE_OK

    def _checkpointer_main(self, conn: apsw.Connection) -> None:
        try:
            while not self._closed:
                self._checkpoint_wanted.wait()
                if not self._closed:
                    # The commit that asked is a message whose delivery is under way
                    # (its flush, the long-polls' reads): a checkpoint now shares the
                    # core with it (bench/RESULTS.md, nineteenth session).
                    time.sleep(CHECKPOINT_DELAY_S)
                self._checkpoint_wanted.clear()
                if self._closed:
                    break
                try:
                    # PASSIVE: never waits for readers or blocks the writer; what it
                    # cannot copy now is copied next time.
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except apsw.Error:
                    log.exception("WAL checkpoint failed")
        finally:
            conn.close()

    # -- writer side -----------------------------------------------------------------

    def _writer_main(self, ready: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            conn = connect(
                self.path, self.settings, synchronous="NORMAL" if self._flushes_wal else None
            )
            migrations.migrate(conn)
            if self._flushes_wal:
                self._flush_wal()
            # Replaces SQLite's automatic checkpoint (itself a WAL hook) with a nudge to
            # the checkpointer thread.
            conn.set_wal_hook(self._wal_hook)
        except BaseException as exc:
            ready.put(exc)
            return
        if self._flushes_wal:
            self._flusher = threading.Thread(
                target=self._flusher_main, name="db-flusher", daemon=True
            )
            self._flusher.start()
        ready.put(None)
        try:
            self._writer_loop(conn)
        finally:
            if self._flusher is not None:
                self._committed.put(_STOP)  # after every batch committed so far
                self._flusher.join()
                self._flusher = None
            conn.close()
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None

    def _writer_loop(self, conn: apsw.Connection) -> None:
        stopping = False
        foreground, background = self._writes
        while not stopping:
            tokens = 0
            first = self._queue.get()
            if first is _STOP:
                stopping = True
            else:
                taken = [first]
                stopping = _take_more(self._queue, taken, self.settings.max_batch)
                tokens = len(taken)
            # As many jobs as tokens taken: foreground first; background jobs join the
            # batch only when no foreground job is in it (they are not waited on by a
            # client, and a big batch of them would hold back a DM's commit).
            if stopping:  # close(): everything queued before it is committed
                batch = [*self._gave_way, *foreground, *background]
                self._gave_way.clear()
                foreground.clear()
                background.clear()
                if batch:
                    self._commit_batch(conn, batch)
                break
            batch = self._foreground_batch(tokens)
            if batch:
                for _ in range(tokens - len(batch)):
                    self._queue.put(None)  # the background jobs keep their tokens
                self._commit_batch(conn, batch)
            else:
                batch = [background.popleft() for _ in range(tokens)]
                self._commit_batch(conn, batch, durable=False)
            del batch  # not kept while idle (as in _reader_main)

    def _foreground_batch(self, tokens: int) -> list[_Job]:
        """Up to `tokens` foreground writes in arrival order, a write that gave way
        (give_way) in its place: after the writes it gave way to, and never in their
        batch (they would wait for it again)."""
        foreground, gave_way = self._writes[0], self._gave_way
        batch: list[_Job] = []
        while len(batch) < tokens:
            if gave_way and (not foreground or foreground[0].order > gave_way[0].order):
                if batch and batch[-1].order <= gave_way[0].order:
                    break
                batch.append(gave_way.popleft())
            elif foreground:
                batch.append(foreground.popleft())
            else:
                break
        return batch

    def _commit_batch(
        self, conn: apsw.Connection, batch: list[_Job], *, durable: bool = True
    ) -> None:
        started = time.perf_counter()
        outcomes: list[tuple[bool, Any]] = []
        seq = 0
        committed = False
        self._writing = durable
        gave_way: list[_Job] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._batch = batch
            for index, job in enumerate(batch):
                conn.execute("SAVEPOINT unit")
                self._unit, self._unit_index = job, index
                try:
                    result = job.fn(conn)
                except GiveWay:
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    gave_way.append(job)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE unit")
                    outcomes.append((True, result))
                finally:
                    self._unit = None
            self._batch = []
            if gave_way:
                # They run again in a batch of their own, each with a token of its own.
                stepped_aside = {id(job) for job in gave_way}
                batch = [job for job in batch if id(job) not in stepped_aside]
                self._gave_way.extend(gave_way)
                for _ in gave_way:
                    self._queue.put(None)
                if not batch:  # nothing else was in the batch: nothing to commit
                    conn.execute("ROLLBACK")
                    self._end_writing()
                    return
            # Reads that came first see the database without this batch...
            self._wait_for_earlier_reads(batch, self._unstarted_reads)
            seq = self._number_commit(batch)
            conn.execute("COMMIT")
            committed = True
        except BaseException as exc:
            # The transaction itself failed (disk full, I/O error): nothing of the
            # batch is durable, so every unit in it fails.
            log.exception("write batch of %d failed to commit", len(batch))
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            outcomes = [(False, exc)] * len(batch)
        self._end_writing()  # committed: what is left (the flush) needs no CPU
        if not seq:
            seq = self._number_commit(batch)
        for listener in self._commit_listeners:
            try:
                listener(conn)
            except Exception:
                log.exception("commit listener %r failed", listener)
        if committed:
            callbacks: dict[asyncio.AbstractEventLoop, list[tuple[Callable[[Any], None], Any]]] = {}
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if ok and job.on_commit is not None:
                    callbacks.setdefault(job.loop, []).append((job.on_commit, value))
            for loop, calls in callbacks.items():
                _post(loop, _call, calls)
        done = _Committed(seq, batch, outcomes, committed and durable, started)
        if not self._flushes_wal:
            self._tell([done])
            return
        with self._durable_lock:
            hand_over = self._with_flusher > 0 or not self._queue.empty()
            if hand_over:
                self._with_flusher += 1
        if hand_over:
            # Another write waits (or the flusher has earlier batches still to tell): the
            # flusher flushes and tells, in commit order, while this thread goes on.
            self._committed.put(done)
        else:
            # Nothing waits: flush here, with no thread to wake for it.
            self._flush_and_tell([done])

    def _end_writing(self) -> None:
        """A foreground batch is over (committed, failed, or given way): the background
        work that stepped aside for it goes on."""
        if not self._writing:
            return
        self._writing = False
        with self._write_done:
            self._write_done.notify_all()
        if self._passing and not self._writes[0]:
            self._release_waiting_loops()

    def _number_commit(self, batch: list[_Job]) -> int:
        """Number the commit about to happen: from now on a reader may see it, and its
        writes' clients wait to be told."""
        with self._durable_lock:
            for job in batch:
                if job.key is not None:
                    self._untold[job.key] = self._untold.get(job.key, 0) + 1
            self._visible += 1
            return self._visible

    # -- the flusher (FULL) ---------------------------------------------------------------

    def _flusher_main(self) -> None:
        stopping = False
        while not stopping:
            first = self._committed.get()
            if first is _STOP:
                break
            group = [first]  # with everything committed meanwhile: they share the flush
            stopping = _take_more(self._committed, group, sys.maxsize)
            done = [c for c in group if isinstance(c, _Committed)]
            try:
                self._flush_and_tell(done)
            except Exception as exc:  # a bug here must not leave writes waiting forever
                log.exception("the flusher failed to tell %d commits", len(done))
                for c in done:
                    c.outcomes = [(False, exc)] * len(c.batch)
                self._tell(done)
            finally:
                with self._durable_lock:
                    self._with_flusher -= len(done)
            del first, group, done  # not kept while idle (as in _reader_main)

    def _flush_and_tell(self, done: list[_Committed]) -> None:
        """One flush for these batches (each written to the WAL before it begins), then
        their outcomes."""
        if any(c.needs_flush for c in done):
            try:
                self._flush_wal()
            except OSError as exc:
                # Whether the data reached the disk is unknown: nobody is told it is
                # saved. (Readers see it all the same: it is in the file, as after any
                # failed fsync, where SQLite's own FULL commit would have rolled it back.)
                log.exception("flushing the WAL after %d commits failed", len(done))
                for c in done:
                    if c.needs_flush:
                        c.outcomes = [(False, exc)] * len(c.batch)
        self._tell(done)

    def _tell(self, done: list[_Committed]) -> None:
        """The outcomes of these batches (in commit order), then the reads held for them:
        a sender hears back before its own long-polls its message woke (matrix-js-sdk
        stumbles when the remote echo of its own event beats the answer to its PUT).
        Other clients' held reads are released first: they need not wait for these
        outcomes."""
        # ...and are answered before it is acknowledged.
        self._wait_for_earlier_reads([job for c in done for job in c.batch], self._running_reads)
        if done:
            self._release_other_clients(done[-1].seq)
        now = time.perf_counter()
        for c in done:
            if self.observer is not None:
                try:
                    self.observer.observe_commit(now - c.started, len(c.batch))
                except Exception:  # a metric must never leave a write untold
                    log.exception("commit observer failed")
            by_loop: dict[asyncio.AbstractEventLoop, tuple[list[_Outcome], list[str]]] = {}
            for job, (ok, value) in zip(c.batch, c.outcomes, strict=True):
                results, keys = by_loop.setdefault(job.loop, ([], []))
                results.append((job.future, ok, value))
                if job.key is not None:
                    keys.append(job.key)
            for loop, told in by_loop.items():
                _post(loop, self._told, told)
        if done:
            self._mark_durable(done[-1].seq)

    def _told(self, told: tuple[list[_Outcome], list[str]]) -> None:
        """On the loop: writes' outcomes resolved. Their clients' reads stop waiting
        behind them once the tasks that awaited them have taken their next step (the
        step that answers, for the message path): a callback queued now runs after the
        wake-ups the outcomes just queued."""
        results, keys = told
        _resolve(results)
        if keys:
            asyncio.get_running_loop().call_soon(self._forget_untold, keys)

    def _forget_untold(self, keys: list[str]) -> None:
        with self._durable_lock:
            for key in keys:
                left = self._untold.get(key, 0) - 1
                if left > 0:
                    self._untold[key] = left
                else:
                    self._untold.pop(key, None)


def _discard(sets: dict[str, set[int]], key: str, ticket: int) -> None:
    mine = sets.get(key)
    if mine is not None:
        mine.discard(ticket)
        if not mine:
            del sets[key]


def _take_more(jobs: queue.SimpleQueue[object], taken: list[object], limit: int) -> bool:
    """Add to `taken` what is queued already, up to `limit` items in all; True if the
    stop marker came (it is not added)."""
    while len(taken) < limit:
        try:
            nxt = jobs.get_nowait()
        except queue.Empty:
            return False
        if nxt is _STOP:
            return True
        taken.append(nxt)
    return False


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[[Any], None], arg: Any) -> None:
    # A closed loop means nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, arg)


def _set_event(event: asyncio.Event) -> None:
    event.set()


def _call(calls: list[tuple[Callable[[Any], None], Any]]) -> None:
    for callback, value in calls:
        try:
            callback(value)
        except Exception:
            log.exception("on_commit callback %r failed", callback)


def _resolve(results: list[_Outcome]) -> None:
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
