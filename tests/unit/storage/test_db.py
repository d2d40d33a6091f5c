"""The storage engine: group commit, isolation of failing units, durability contract."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

from dendrite_lite import fan_out
from dendrite_lite.storage import db as db_module
from dendrite_lite.storage import snapshot, streams
from dendrite_lite.storage.db import Database, DatabaseClosed, DatabaseSettings


class Recorder:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def observe_commit(self, seconds: float, batch_size: int) -> None:
        self.batches.append(batch_size)


@pytest.fixture
def db(tmp_path: Path):
    recorder = Recorder()
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(reader_threads=2), recorder)
    database.open()
    yield database
    database.close()


async def test_concurrent_writes_share_commits_and_all_land(db: Database) -> None:
    positions = await asyncio.gather(*[db.write(streams.next_position) for _ in range(500)])
    assert sorted(positions) == list(range(1, 501))
    assert await db.read(streams.current_position) == 500
    recorder: Recorder = db.observer  # type: ignore[assignment]
    assert sum(recorder.batches) == 500
    # Writes queued together were committed together.
    assert len(recorder.batches) < 500


async def test_failing_unit_rolls_back_alone(db: Database) -> None:
    def bad(conn: apsw.Connection) -> None:
        streams.next_position(conn)
        raise ValueError("refused")

    results = await asyncio.gather(
        db.write(streams.next_position),
        db.write(bad),
        db.write(streams.next_position),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert sorted(r for r in results if isinstance(r, int)) == [1, 2]
    assert await db.read(streams.current_position) == 2


async def test_read_sees_acknowledged_write(db: Database) -> None:
    for expected in range(1, 20):
        await db.write(streams.next_position)
        assert await db.read(streams.current_position) == expected


async def test_read_is_one_snapshot(db: Database) -> None:
    def two_reads(conn: apsw.Connection) -> tuple[int, int]:
        first = streams.current_position(conn)
        # A write committed from another connection mid-unit is not seen.
        other = apsw.Connection(str(db.path))
        other.execute("UPDATE stream_position SET position = position + 100")
        other.close()
        return first, streams.current_position(conn)

    first, second = await db.read(two_reads)
    assert first == second


class _Answer:
    """An answer a unit returns, to see who keeps it (a weak reference does not)."""


async def _released(ref: weakref.ref[_Answer]) -> bool:
    """Whether the answer is freed once the thread that computed it goes idle (it lets
    go of it after handing it over, so give it a moment)."""
    for _ in range(200):
        gc.collect()
        if ref() is None:
            return True
        await asyncio.sleep(0.005)
    return False


@pytest.mark.parametrize("how", ["reader", "background", "short", "write"])
async def test_an_answer_is_not_kept_once_taken(db: Database, how: str) -> None:
    """A legacy initial /sync's answer is megabytes; a reader thread kept its last one
    alive until its next read (RSS 64 -> 87 MiB over a few big syncs, three readers)."""
    refs: list[weakref.ref[_Answer]] = []

    def unit(conn: apsw.Connection) -> _Answer:
        streams.current_position(conn)
        answer = _Answer()
        refs.append(weakref.ref(answer))
        return answer

    if how == "write":
        answer = await db.write(unit)
    else:
        answer = await db.read(unit, background=how == "background", short=how == "short")
    assert refs[0]() is answer
    del answer
    assert await _released(refs[0])


async def test_closed_database_refuses_work(tmp_path: Path) -> None:
    database = Database(tmp_path / "x.db")
    database.open()
    database.close()
    database.close()  # idempotent
    with pytest.raises(DatabaseClosed):
        await database.read(streams.current_position)
    with pytest.raises(DatabaseClosed):
        await database.write(streams.next_position)
    with pytest.raises(DatabaseClosed):
        await database.write_soon(streams.next_position)


async def test_a_write_soon_lands_in_the_background_and_tells_its_outcome(db: Database) -> None:
    done = db.write_soon(streams.next_position)
    assert await done == 1
    assert await db.read(streams.current_position) == 1

    def fail(conn: apsw.Connection) -> None:
        raise RuntimeError("boom")

    failed = db.write_soon(fail)
    with pytest.raises(RuntimeError):
        await failed
    assert await db.read(streams.current_position) == 1


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    database = Database(tmp_path / "x.db")
    database.open()
    pending = [asyncio.ensure_future(database.write(streams.next_position)) for _ in range(50)]
    await asyncio.sleep(0)
    database.close()
    await asyncio.gather(*pending)
    assert await position_after_reopening(tmp_path / "x.db") == 50


async def position_after_reopening(path: Path) -> int:
    """The stream position a database opened anew on `path` finds."""
    reopened = Database(path)
    reopened.open()
    try:
        return await reopened.read(streams.current_position)
    finally:
        reopened.close()


def test_pragmas(tmp_path: Path) -> None:
    database = Database(tmp_path / "x.db")
    database.open()
    database.close()
    conn = apsw.Connection(str(tmp_path / "x.db"))
    assert conn.pragma("journal_mode") == "wal"
    conn.close()


def test_cached_statements_are_not_prepared_again_for_new_parameters(tmp_path: Path) -> None:
    """The query planner stability guarantee (storage/db.connect): without it SQLite
    prepares `col = ? ... ORDER BY` again whenever `?` is bound anew. SQLite asks the
    authorizer while it prepares a statement, so its calls count the preparations."""
    conn = db_module.connect(tmp_path / "x.db", DatabaseSettings())
    conn.execute("CREATE TABLE t (a INTEGER, b INTEGER)")
    conn.execute("CREATE INDEX t_ab ON t (a, b)")
    query = "SELECT b FROM t WHERE a = ? ORDER BY b"
    prepared: list[int] = []

    def authorizer(*args: Any) -> int:
        prepared.append(args[0])
        return apsw.SQLITE_OK

    conn.authorizer = authorizer  # expires what is cached: the next run prepares again
    conn.execute(query, (0,)).fetchall()
    assert prepared
    prepared.clear()
    for value in range(1, 4):
        conn.execute(query, (value,)).fetchall()
    assert prepared == []
    conn.close()


async def test_checkpoints_run_off_the_writer(tmp_path: Path) -> None:
    """Pages reach the database file through the checkpointer thread, not the commits."""
    database = Database(tmp_path / "cp.db", DatabaseSettings(checkpoint_pages=20))
    database.open()
    try:
        main_file = tmp_path / "cp.db"

        def fill(conn: apsw.Connection) -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB) STRICT")
            conn.execute("INSERT INTO filler VALUES (?)", (b"x" * 8000,))

        await database.write(fill)
        before = main_file.stat().st_size
        for _ in range(60):
            await database.write(fill)
        for _ in range(100):
            if main_file.stat().st_size > before + 200_000:
                break
            await asyncio.sleep(0.02)
        assert main_file.stat().st_size > before + 200_000
    finally:
        database.close()


async def test_a_checkpoint_waits_a_little_after_the_commit_that_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit that makes the WAL long enough is a message whose delivery is under
    way: the checkpoint waits CHECKPOINT_DELAY_S instead of sharing the core with it."""
    monkeypatch.setattr(db_module, "CHECKPOINT_DELAY_S", 1.0)
    database = Database(tmp_path / "cp.db", DatabaseSettings(checkpoint_pages=20))
    database.open()
    try:
        main_file = tmp_path / "cp.db"

        def fill(rows: int) -> Callable[[apsw.Connection], None]:
            def write(conn: apsw.Connection) -> None:
                conn.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB) STRICT")
                for _ in range(rows):
                    conn.execute("INSERT INTO filler VALUES (?)", (b"x" * 8000,))

            return write

        await database.write(fill(1))
        before = main_file.stat().st_size
        asked = time.monotonic()
        await database.write(fill(40))  # one commit: 80 pages
        assert main_file.stat().st_size == before  # not yet
        for _ in range(250):
            if main_file.stat().st_size > before + 200_000:
                break
            await asyncio.sleep(0.02)
        assert main_file.stat().st_size > before + 200_000
        assert time.monotonic() - asked >= 1.0
    finally:
        database.close()


async def test_background_reads_never_hold_back_other_reads(tmp_path: Path) -> None:
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(reader_threads=1))
    database.open()
    try:
        order: list[str] = []
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def blocker(conn: apsw.Connection) -> None:
            # A long fan-out: holds the background reader until the DM's read is done.
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
            order.append("fan-out 1")

        def note(name: str) -> Any:
            return lambda conn: order.append(name)

        fan_out = [
            asyncio.ensure_future(database.read(blocker, background=True)),
            asyncio.ensure_future(database.read(note("fan-out 2"), background=True)),
        ]
        await asyncio.sleep(0.05)
        await database.read(note("dm"))  # answered while the fan-out waits
        gate.set()
        await asyncio.gather(*fan_out)
        assert order == ["dm", "fan-out 1", "fan-out 2"]
    finally:
        database.close()


async def test_a_fan_out_holds_what_it_answered_until_its_last_read_is_back(db: Database) -> None:
    """The connections a fan-out answers wait for its other answers (dendrite_lite/fan_out.py):
    the request task of a background read learns how, and the waits end once no
    background read is outstanding."""
    assert db.hold_until_background_idle(lambda: None) is False  # nothing under way
    released: list[str] = []
    gate = threading.Event()

    def slow(conn: apsw.Connection) -> int:
        gate.wait(5)
        return streams.current_position(conn)

    async def member(name: str, fn: Any) -> bool:
        assert fan_out.answered_by_fan_out.get() is None
        await db.read(fn, background=True)
        hold = fan_out.answered_by_fan_out.get()
        assert hold is not None

        def release() -> None:
            released.append(name)

        held = hold(release)
        assert hold(release) is held  # the same connection held again: waits once
        return held

    first = asyncio.ensure_future(member("first", streams.current_position))
    last = asyncio.ensure_future(member("last", slow))
    await asyncio.sleep(0.05)
    assert not last.done() and released == []
    gate.set()
    # The first is held while the other read is out; the last finds nothing left to
    # wait for, and its return releases the first.
    assert await asyncio.gather(first, last) == [True, False]
    assert released == ["first"]
    # A foreground read is no fan-out's answer.
    assert await db.read(streams.current_position) == 0
    assert fan_out.answered_by_fan_out.get() is None


async def test_a_failed_background_read_still_ends_the_fan_out(db: Database) -> None:
    def fail(conn: apsw.Connection) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.read(fail, background=True)
    assert db.hold_until_background_idle(lambda: None) is False


def waits_for(gate: threading.Event) -> Any:
    """A read unit that holds its reader until `gate` is set."""

    def unit(conn: apsw.Connection) -> int:
        gate.wait(5)
        return 0

    return unit


async def test_a_write_soon_waits_for_the_fan_outs_reads_in_its_order(db: Database) -> None:
    """A background write asked for while background reads are out is committed once
    they are all back (the fan-out's answers come first), in the order asked for."""
    gate = threading.Event()
    written: list[str] = []

    def slow(conn: apsw.Connection) -> int:
        gate.wait(5)
        return streams.current_position(conn)

    def note(name: str) -> Any:
        def unit(conn: apsw.Connection) -> int:
            written.append(name)
            return streams.next_position(conn)

        return unit

    read = asyncio.ensure_future(db.read(slow, background=True))
    await asyncio.sleep(0.02)
    first, second = db.write_soon(note("first")), db.write_soon(note("second"))
    await asyncio.sleep(0.03)
    assert written == [] and not first.done()
    # A client's own write does not wait.
    assert await db.write(note("foreground")) == 1
    assert written == ["foreground"]
    gate.set()
    assert await read == 0  # its snapshot was taken before any write
    assert await asyncio.gather(first, second) == [2, 3]
    assert written == ["foreground", "first", "second"]


async def test_a_write_soon_waits_for_a_fan_out_a_bounded_time(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "BACKGROUND_WRITE_DELAY_S", 0.05)
    gate = threading.Event()
    read = asyncio.ensure_future(db.read(waits_for(gate), background=True))
    await asyncio.sleep(0.02)
    try:
        # Committed while the read is still out, after the bound.
        assert await asyncio.wait_for(db.write_soon(streams.next_position), 2) == 1
        assert not read.done()
    finally:
        gate.set()
        await read


async def test_close_commits_the_writes_held_for_a_fan_out(tmp_path: Path) -> None:
    path = tmp_path / "homeserver.db"
    database = Database(path, DatabaseSettings())
    database.open()
    gate = threading.Event()
    read = asyncio.ensure_future(database.read(waits_for(gate), background=True))
    await asyncio.sleep(0.02)
    held = [database.write_soon(streams.next_position) for _ in range(3)]
    gate.set()
    database.close()  # before the loop has seen the read come back
    assert await asyncio.gather(*held) == [1, 2, 3]
    await read
    assert await position_after_reopening(path) == 3


async def test_background_writes_are_not_batched_with_foreground_ones(tmp_path: Path) -> None:
    recorder = Recorder()
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(), recorder)
    database.open()
    try:
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def blocker(conn: apsw.Connection) -> None:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)

        first = asyncio.ensure_future(database.write(blocker))
        await asyncio.sleep(0.05)
        background = [
            asyncio.ensure_future(database.write(streams.next_position, background=True))
            for _ in range(40)
        ]
        foreground = asyncio.ensure_future(database.write(streams.next_position))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, foreground, *background)
        # The blocker alone, then the foreground write alone, then the background ones
        assert recorder.batches[:2] == [1, 1]
        assert sum(recorder.batches) == 42
        assert await database.read(streams.current_position) == 41
    finally:
        database.close()


async def test_close_commits_queued_background_writes(tmp_path: Path) -> None:
    path = tmp_path / "homeserver.db"
    database = Database(path, DatabaseSettings())
    database.open()
    pending = [
        asyncio.ensure_future(database.write(streams.next_position, background=True))
        for _ in range(10)
    ]
    await asyncio.sleep(0)
    database.close()
    await asyncio.gather(*pending)
    assert await position_after_reopening(path) == 10


class Flushes:
    """Stands in for os.fdatasync: records which file each flush was for, and can hold
    the writer inside a flush (as a slow disk would) until released."""

    def __init__(self, *, gate: threading.Event | None = None, error: OSError | None = None):
        self.files: list[str] = []
        self.gate = gate
        self.error = error
        self.entered = threading.Event()

    def __call__(self, fd: int) -> None:
        self.files.append(os.readlink(f"/proc/self/fd/{fd}"))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        os.fsync(fd)


async def test_durable_writes_flush_the_wal_and_background_ones_do_not(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With synchronous=FULL the writer commits as NORMAL and flushes the WAL itself;
    background batches (what may be lost to a power cut) are not flushed."""
    flushes = Flushes()
    monkeypatch.setattr(db_module, "_flush", flushes)

    def level(conn: apsw.Connection) -> int:
        return int(conn.pragma("synchronous"))

    assert await db.write(level) == 1  # NORMAL, and then our own flush
    assert flushes.files == [f"{db.path}-wal"]
    assert await db.write(level, background=True) == 1
    assert len(flushes.files) == 1
    await db.write(streams.next_position)
    assert len(flushes.files) == 2

    def fail(conn: apsw.Connection) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.write(fail, background=True)
    assert len(flushes.files) == 2
    assert await db.read(streams.current_position) == 1


async def _write_held_at_its_flush(
    db: Database, monkeypatch: pytest.MonkeyPatch, order: list[str], key: str | None = None
) -> tuple[threading.Event, Flushes, asyncio.Future[int]]:
    """A write (by the client `key`) committed, its on_commit run, and its flush held
    until the returned gate is set; "write" goes into `order` when it is answered."""
    gate = threading.Event()
    flushes = Flushes(gate=gate)
    monkeypatch.setattr(db_module, "_flush", flushes)
    committed = asyncio.Event()

    def write() -> Awaitable[int]:
        return db.write(streams.next_position, on_commit=lambda pos: committed.set())

    future = asyncio.ensure_future(write() if key is None else _as_client(key, write))
    future.add_done_callback(lambda _: order.append("write"))
    await asyncio.wait_for(committed.wait(), 5)
    return gate, flushes, future


@pytest.mark.parametrize("short", [False, True])
async def test_a_read_that_saw_an_unflushed_commit_waits_for_the_flush(
    db: Database, monkeypatch: pytest.MonkeyPatch, short: bool
) -> None:
    """on_commit runs once the data is visible, before the flush; a read that sees the
    commit (on a reader, or a short one on the loop) is answered only after the flush,
    and after the write itself."""
    order: list[str] = []
    gate, flushes, write = await _write_held_at_its_flush(db, monkeypatch, order)
    read = asyncio.ensure_future(db.read(streams.current_position, short=short))
    read.add_done_callback(lambda _: order.append("read"))
    background_read = asyncio.ensure_future(db.read(streams.current_position, background=True))
    await asyncio.sleep(0.2)
    assert flushes.entered.is_set()
    assert not write.done() and not read.done() and not background_read.done()
    gate.set()
    assert await read == 1
    assert await background_read == 1
    assert await write == 1
    assert order == ["write", "read"]


async def test_a_short_read_runs_on_the_loop_thread(db: Database) -> None:
    """A short read (a woken long-poll's increment) runs on the event loop's thread, not
    a reader's (its hold for the flush: the test above)."""
    threads: list[int] = []

    def position(conn: apsw.Connection) -> int:
        threads.append(threading.get_ident())
        return streams.current_position(conn)

    assert await db.read(position, short=True) == 0
    assert await db.read(position) == 0
    assert threads[0] == threading.get_ident() and threads[1] != threading.get_ident()


async def test_a_short_read_is_answered_after_the_write_it_saw(db: Database) -> None:
    """The write's outcome is already waiting on the loop when the short read runs: the
    sender must still hear back first (matrix-js-sdk stumbles when the remote echo of
    its own event beats the answer to its PUT)."""
    order: list[str] = []

    async def send() -> None:
        await db.write(streams.next_position)
        order.append("write")

    async def poll() -> None:
        assert await db.read(streams.current_position, short=True) == 1
        order.append("read")

    sent = asyncio.ensure_future(send())
    await asyncio.sleep(0)  # the write is queued
    deadline = time.monotonic() + 5
    while db._durable < 1 and time.monotonic() < deadline:
        # The loop is kept busy on purpose: the write's outcome waits in its queue.
        time.sleep(0.001)  # noqa: ASYNC251
    polled = asyncio.ensure_future(poll())
    await asyncio.gather(sent, polled)
    assert order == ["write", "read"]


BOB_CLIENT = "@bob:localhost|LAPTOP"
ALICE_CLIENT = "@alice:localhost|PHONE"


async def _as_client(key: str, work: Callable[[], Any]) -> Any:
    db_module.arrival_key.set(key)
    return await work()


@pytest.mark.parametrize("reader", [ALICE_CLIENT, BOB_CLIENT])
async def test_only_the_senders_own_short_read_waits_for_the_senders_answer(
    db: Database, reader: str
) -> None:
    """The write's outcome already waits on the loop when a short read that saw it is
    done: the sender's own long-poll is answered after the sender (matrix-js-sdk), but
    another client's long-poll goes first: it does not wait for someone else's PUT."""
    order: list[str] = []

    async def send() -> None:
        await _as_client(ALICE_CLIENT, lambda: db.write(streams.next_position))
        order.append("write")

    async def poll() -> None:
        read = _as_client(reader, lambda: db.read(streams.current_position, short=True))
        assert await read == 1
        order.append("read")

    sent = asyncio.ensure_future(send())
    await asyncio.sleep(0)  # the write is queued
    deadline = time.monotonic() + 5
    while db._durable < 1 and time.monotonic() < deadline:
        time.sleep(0.001)  # noqa: ASYNC251 (the write's outcome waits in the loop's queue)
    polled = asyncio.ensure_future(poll())
    await asyncio.gather(sent, polled)
    assert order == (["write", "read"] if reader == ALICE_CLIENT else ["read", "write"])
    assert db._untold == {}


@pytest.mark.parametrize("short", [False, True])
@pytest.mark.parametrize("reader", [ALICE_CLIENT, BOB_CLIENT])
async def test_a_read_held_for_a_flush_goes_before_the_senders_answer_unless_its_own(
    db: Database, monkeypatch: pytest.MonkeyPatch, short: bool, reader: str
) -> None:
    """A read that saw the commit before its flush is held; when the flush is done,
    another client's read is released before the write's outcome is told, the
    sender's own after it."""
    order: list[str] = []
    gate, _, write = await _write_held_at_its_flush(db, monkeypatch, order, ALICE_CLIENT)
    read = asyncio.ensure_future(
        _as_client(reader, lambda: db.read(streams.current_position, short=short))
    )
    read.add_done_callback(lambda _: order.append("read"))
    await asyncio.sleep(0.2)
    assert not write.done() and not read.done()  # held for the flush
    assert len(db._held) == 1
    gate.set()
    assert await read == 1
    assert await write == 1
    await asyncio.sleep(0)  # the done callbacks
    assert order == (["write", "read"] if reader == ALICE_CLIENT else ["read", "write"])
    assert db._held == [] and db._untold == {}


async def test_a_short_read_fails_with_its_units_error_and_rolls_its_snapshot_back(
    db: Database,
) -> None:
    def fail(conn: apsw.Connection) -> int:
        conn.execute("SELECT 1").fetchall()
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await db.read(fail, short=True)
    await db.write(streams.next_position)
    # The failed unit's read transaction was ended: the next short read sees the write.
    assert await db.read(streams.current_position, short=True) == 1


async def test_short_reads_from_two_threads_at_once_use_the_readers(tmp_path: Path) -> None:
    """The loop's connection is one: a short read asked for on another thread while it is
    in use goes to a reader thread instead of touching it concurrently."""
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(reader_threads=2))
    database.open()
    try:
        inside, release = threading.Event(), threading.Event()
        threads: list[int] = []

        def held(conn: apsw.Connection) -> int:
            threads.append(threading.get_ident())
            inside.set()
            release.wait(5)
            return streams.current_position(conn)

        def quick(conn: apsw.Connection) -> int:
            threads.append(threading.get_ident())
            return streams.current_position(conn)

        other = threading.Thread(target=lambda: asyncio.run(database.read(held, short=True)))
        other.start()
        assert await asyncio.to_thread(inside.wait, 5)
        assert await database.read(quick, short=True) == 0
        release.set()
        await asyncio.to_thread(other.join, 5)
        assert threads[0] == other.ident
        assert threads[1] not in (other.ident, threading.get_ident())  # a reader's
    finally:
        database.close()


async def test_a_short_read_is_refused_once_the_database_is_closed(tmp_path: Path) -> None:
    database = Database(tmp_path / "homeserver.db")
    database.open()
    database.close()
    with pytest.raises(DatabaseClosed):
        await database.read(streams.current_position, short=True)


async def test_the_writer_goes_on_while_the_flusher_flushes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write queued behind another commits while the other's flush is held (a DM behind
    a big room's message); outcomes are still told in commit order, each after a flush
    that began after its commit, and a read that saw the later commit waits for it."""
    gate = threading.Event()
    flushes = Flushes(gate=gate)
    monkeypatch.setattr(db_module, "_flush", flushes)
    running, go_on = threading.Event(), threading.Event()

    def first_unit(conn: apsw.Connection) -> int:
        running.set()
        go_on.wait(5)  # until the second write is queued behind it
        return streams.next_position(conn)

    order: list[str] = []
    second_committed = asyncio.Event()
    first = asyncio.ensure_future(db.write(first_unit))
    first.add_done_callback(lambda _: order.append("first"))
    assert await asyncio.to_thread(running.wait, 5)
    second = asyncio.ensure_future(
        db.write(streams.next_position, on_commit=lambda pos: second_committed.set())
    )
    second.add_done_callback(lambda _: order.append("second"))
    await asyncio.sleep(0.05)  # the second write is in the writer's queue
    go_on.set()
    # No flush can end (the gate is shut), and the second write commits all the same.
    await asyncio.wait_for(second_committed.wait(), 5)
    assert await asyncio.to_thread(flushes.entered.wait, 5)
    read = asyncio.ensure_future(db.read(streams.current_position))
    read.add_done_callback(lambda _: order.append("read"))
    await asyncio.sleep(0.1)
    assert not first.done() and not second.done() and not read.done()
    gate.set()
    assert await first == 1
    assert await second == 2
    assert await read == 2
    await asyncio.sleep(0.01)  # the done callbacks of the futures awaited when done
    assert order == ["first", "second", "read"]


class SlowSnapshots:
    """Stands in for a reader starved of the CPU (the event loop and the writer holding
    the GIL): it takes `delay` seconds to begin each read transaction."""

    def __init__(self, database: Database, delay: float) -> None:
        self.begin = database._begin_read
        self.delay = delay

    def __call__(self, conn: apsw.Connection) -> int:
        threading.Event().wait(self.delay)
        return self.begin(conn)


ALICE = "@alice:localhost|PHONE"


class StuckSnapshots:
    """Stands in for a reader that cannot begin a read transaction until released."""

    def __init__(self, database: Database) -> None:
        self.begin = database._begin_read
        self.release = threading.Event()

    def __call__(self, conn: apsw.Connection) -> int:
        self.release.wait(10)
        return self.begin(conn)


async def a_write_passes_a_stuck_read(
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    *,
    writer: str,
    background: bool = False,
) -> None:
    """alice's read is queued first and cannot begin; a write by `writer` is
    acknowledged while it waits, and the read, begun after the commit, sees it."""
    stuck = StuckSnapshots(db)
    monkeypatch.setattr(db, "_begin_read", stuck)

    async def as_client(key: str, work: Any) -> Any:
        db_module.arrival_key.set(key)
        return await work()

    read = asyncio.ensure_future(as_client(ALICE, lambda: db.read(streams.current_position)))
    await asyncio.sleep(0.01)  # taken by a reader, stuck before its snapshot
    write = as_client(writer, lambda: db.write(streams.next_position, background=background))
    assert await asyncio.wait_for(write, 5) == 1
    assert not read.done()
    stuck.release.set()
    assert await read == 1


async def test_a_read_that_arrived_before_a_write_does_not_see_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client fetches a thread's root and then sends a reply (matrix-js-sdk does, and
    counts the reply twice if the root's summary has it): the read was asked for first,
    so it sees the database as it was before the write, however late its reader starts,
    and is answered before the write is acknowledged."""
    db_module.arrival_key.set(ALICE)
    monkeypatch.setattr(db_module, "ARRIVAL_WAIT_S", 10.0)  # a slow host stays in bounds
    monkeypatch.setattr(db, "_begin_read", SlowSnapshots(db, 0.003))
    order: list[str] = []
    read = asyncio.ensure_future(db.read(streams.current_position))
    read.add_done_callback(lambda _: order.append("read"))
    await asyncio.sleep(0)  # queued
    write = asyncio.ensure_future(db.write(streams.next_position))
    write.add_done_callback(lambda _: order.append("write"))
    assert await write == 1
    assert await read == 0
    assert order == ["read", "write"]
    # A read asked for after the write sees it.
    assert await db.read(streams.current_position) == 1


async def test_a_commit_waits_for_earlier_reads_only_so_long(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that cannot start holds a commit back ARRIVAL_WAIT_S at most: the write
    is acknowledged while the read is still waiting to begin, and the read, begun after
    the commit, sees it."""
    await a_write_passes_a_stuck_read(db, monkeypatch, writer=ALICE)


async def test_a_commit_does_not_wait_for_reads_no_reader_is_free_to_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every reader busy, a queued read may wait for long: the commit does not wait
    for it (the bound is made far longer than the test may take), and the read, begun
    after the commit, sees it. The busy reader's read came first: it is answered before
    the write is acknowledged."""
    db_module.arrival_key.set(ALICE)
    monkeypatch.setattr(db_module, "ARRIVAL_WAIT_S", 30.0)
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(reader_threads=1))
    database.open()
    try:
        busy, release = threading.Event(), threading.Event()

        def long_read(conn: apsw.Connection) -> int:
            busy.set()
            release.wait(10)
            return streams.current_position(conn)

        order: list[str] = []
        first = asyncio.ensure_future(database.read(long_read))
        first.add_done_callback(lambda _: order.append("first read"))
        assert await asyncio.to_thread(busy.wait, 5)
        queued = asyncio.ensure_future(database.read(streams.current_position))
        await asyncio.sleep(0)
        committed = asyncio.Event()
        write = asyncio.ensure_future(
            database.write(streams.next_position, on_commit=lambda pos: committed.set())
        )
        write.add_done_callback(lambda _: order.append("write"))
        await asyncio.wait_for(committed.wait(), 5)
        assert not first.done() and not queued.done() and not write.done()
        release.set()
        assert await first == 0  # its snapshot was taken before the commit
        assert await write == 1
        assert await queued == 1
        await asyncio.sleep(0.01)
        assert order == ["first read", "write"]
    finally:
        database.close()


async def test_a_commit_does_not_wait_for_another_clients_reads(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrival order is kept between one client's requests: bob's write does not wait for
    alice's read, however long that takes (the bound is made far longer than the test)."""
    monkeypatch.setattr(db_module, "ARRIVAL_WAIT_S", 30.0)
    await a_write_passes_a_stuck_read(db, monkeypatch, writer="@bob:localhost|LAPTOP")


async def test_a_background_write_does_not_wait_for_its_clients_reads(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody waits for a background write (a sliding sync position), so it keeps no
    order: the writer does not wait for the client's earlier read on its behalf."""
    monkeypatch.setattr(db_module, "ARRIVAL_WAIT_S", 30.0)
    await a_write_passes_a_stuck_read(db, monkeypatch, writer=ALICE, background=True)


async def test_a_read_begun_before_a_commit_does_not_wait_for_its_flush(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a read whose snapshot may hold a commit waits for that commit's flush: one
    that began before it is answered while the disk still flushes."""
    gate = threading.Event()
    monkeypatch.setattr(db_module, "_flush", Flushes(gate=gate))
    began, committed_seen = threading.Event(), threading.Event()

    def long_read(conn: apsw.Connection) -> int:
        began.set()
        committed_seen.wait(5)  # until the write has committed
        return streams.current_position(conn)

    read = asyncio.ensure_future(db.read(long_read))
    assert await asyncio.to_thread(began.wait, 5)
    write = asyncio.ensure_future(
        db.write(streams.next_position, on_commit=lambda pos: committed_seen.set())
    )
    assert await asyncio.wait_for(read, 5) == 0
    assert not write.done()  # its flush is still held
    gate.set()
    assert await write == 1


async def test_on_commit_runs_only_for_units_that_were_committed(db: Database) -> None:
    called: list[Any] = []

    def bad(conn: apsw.Connection) -> None:
        streams.next_position(conn)
        raise ValueError("refused")

    results = await asyncio.gather(
        db.write(streams.next_position, on_commit=called.append),
        db.write(bad, on_commit=called.append),
        return_exceptions=True,
    )
    assert results[0] == 1 and isinstance(results[1], ValueError)
    assert called == [1]

    def boom(value: Any) -> None:
        raise RuntimeError("a failing callback is logged, not fatal")

    assert await db.write(streams.next_position, on_commit=boom) == 2


async def test_a_failed_flush_fails_the_writes_and_holds_no_read(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the data reached the disk is unknown: nobody is told it was saved, and
    the reads held for it are not left waiting."""
    monkeypatch.setattr(db_module, "_flush", Flushes(error=OSError(5, "I/O error")))
    with pytest.raises(OSError):
        await db.write(streams.next_position)
    monkeypatch.setattr(db_module, "_flush", Flushes())
    assert await asyncio.wait_for(db.read(streams.current_position), 5) == 1


async def test_background_writes_stay_at_the_configured_level_when_it_is_normal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes = Flushes()
    monkeypatch.setattr(db_module, "_flush", flushes)
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(synchronous="NORMAL"))
    database.open()
    try:

        def level(conn: apsw.Connection) -> int:
            return int(conn.pragma("synchronous"))

        assert await database.write(level, background=True) == 1
        assert await database.write(level) == 1
        assert flushes.files == []  # NORMAL: SQLite's own level, no flush of ours
    finally:
        database.close()


async def test_a_wal_deleted_under_the_server_fails_writes_instead_of_acknowledging_them(
    db: Database,
) -> None:
    """SQLite goes on writing to the deleted file, which nothing would read back: the
    flush looks for the file in use, finds none, and the write fails."""
    await db.write(streams.next_position)
    os.unlink(f"{db.path}-wal")
    with pytest.raises(FileNotFoundError):
        await db.write(streams.next_position)


async def test_background_reads_of_one_batch_share_their_repeated_reads(tmp_path: Path) -> None:
    """A fan-out's woken long-polls are answered in batches that share one snapshot, and
    a read they all make runs once per batch (storage/snapshot.py), never across batches."""
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(reader_threads=1))
    database.open()
    try:
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()
        reads: list[int] = []

        def blocker(conn: apsw.Connection) -> None:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)

        def probe(conn: apsw.Connection) -> int:
            reads.append(1)
            return len(reads)

        def unit(conn: apsw.Connection) -> tuple[int, int]:
            return streams.current_position(conn), snapshot.once(conn, "probe", lambda: probe(conn))

        held = asyncio.ensure_future(database.read(blocker, background=True))
        await asyncio.sleep(0.05)  # the reader holds the blocker; the units queue together
        batch = [asyncio.ensure_future(database.read(unit, background=True)) for _ in range(3)]
        await asyncio.sleep(0.05)
        gate.set()
        await held
        assert await asyncio.gather(*batch) == [(0, 1)] * 3
        assert len(reads) == 1
        await database.write(streams.next_position)
        # A later batch reads afresh; a foreground read never shares.
        assert await database.read(unit, background=True) == (1, 2)
        assert await database.read(unit) == (1, 3)
    finally:
        database.close()


async def test_a_foreground_read_shares_its_repeated_reads_with_itself(db: Database) -> None:
    """One unit asking the same question twice (a sliding sync answer's rooms with events
    since its pos) reads once; the next unit, in a new transaction, reads afresh."""
    reads: list[int] = []

    def probe() -> int:
        reads.append(1)
        return len(reads)

    def unit(conn: apsw.Connection) -> tuple[int, int]:
        return snapshot.once(conn, "probe", probe), snapshot.once(conn, "probe", probe)

    assert await db.read(unit) == (1, 1)
    assert await db.read(unit) == (2, 2)
    assert len(reads) == 2


async def test_background_work_on_the_loop_waits_for_a_foreground_write(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fan-out's answer that is ready while a DM is being written goes on after the
    DM's COMMIT, not beside it (storage/db.py, _writes_passed)."""
    monkeypatch.setattr(db_module, "WRITE_PRIORITY_S", 10.0)  # only the COMMIT lets it go
    loop = asyncio.get_running_loop()
    read_gate, write_gate = asyncio.Event(), asyncio.Event()
    writing = threading.Event()

    def background_unit(conn: apsw.Connection) -> int:
        asyncio.run_coroutine_threadsafe(read_gate.wait(), loop).result(5)
        return streams.current_position(conn)

    def dm(conn: apsw.Connection) -> int:
        writing.set()
        asyncio.run_coroutine_threadsafe(write_gate.wait(), loop).result(5)
        return streams.next_position(conn)

    read = asyncio.ensure_future(db.read(background_unit, background=True))
    await asyncio.sleep(0.05)  # the reader runs the unit, held at its gate
    write = asyncio.ensure_future(db.write(dm))
    assert await asyncio.to_thread(writing.wait, 5)
    read_gate.set()  # the answer is ready, and the DM is being written
    await asyncio.sleep(0.1)
    assert not read.done()
    write_gate.set()
    assert await asyncio.wait_for(write, 5) == 1
    assert await asyncio.wait_for(read, 5) == 0  # its snapshot was taken before the DM
    # With no write in the way nothing waits.
    assert await asyncio.wait_for(db.read(background_unit, background=True), 5) == 1


class BigUnit:
    """A unit written with may_give_way: takes a stream position, then (first run only)
    waits on the event loop until `released`, and offers to give way."""

    def __init__(self, db: Database, loop: asyncio.AbstractEventLoop) -> None:
        self.db = db
        self.loop = loop
        self.runs = 0
        self.running = threading.Event()
        self.released = asyncio.Event()

    def __call__(self, conn: apsw.Connection) -> int:
        self.runs += 1
        position = streams.next_position(conn)
        if self.runs == 1:
            self.running.set()
            asyncio.run_coroutine_threadsafe(self.released.wait(), self.loop).result(5)
        self.db.give_way()
        return position


async def hold_the_writer(db: Database) -> tuple[asyncio.Event, asyncio.Future[int]]:
    """A write that holds the writer until the returned event is set: the writes queued
    meanwhile go into one batch. Returns the event and the write (position 1)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()
    reached = threading.Event()

    def held(conn: apsw.Connection) -> int:
        reached.set()
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
        return streams.next_position(conn)

    first = asyncio.ensure_future(db.write(held))
    assert await asyncio.to_thread(reached.wait, 5)
    return gate, first


async def as_client(key: str, write: Any) -> Any:
    """`write()` awaited in a task of its own with `key` as its arrival key."""
    db_module.arrival_key.set(key)
    return await write()


async def test_a_long_unit_gives_way_to_another_clients_write(db: Database) -> None:
    """A message into a big room being written when a DM arrives steps aside: the DM
    commits first, in a batch of its own, and the message's unit runs again after it
    (its first run's position was rolled back)."""
    big = BigUnit(db, asyncio.get_running_loop())
    order: list[str] = []
    message = asyncio.ensure_future(as_client(ALICE, lambda: db.write(big, may_give_way=True)))
    message.add_done_callback(lambda _: order.append("message"))
    assert await asyncio.to_thread(big.running.wait, 5)
    dm = asyncio.ensure_future(
        as_client("@bob:localhost|LAPTOP", lambda: db.write(streams.next_position))
    )
    dm.add_done_callback(lambda _: order.append("dm"))
    await asyncio.sleep(0.02)  # queued behind the message
    big.released.set()
    assert await asyncio.wait_for(dm, 5) == 1
    assert await asyncio.wait_for(message, 5) == 2
    assert order == ["dm", "message"]
    assert big.runs == 2
    recorder: Recorder = db.observer  # type: ignore[assignment]
    assert recorder.batches == [1, 1]  # nothing was committed for the first run


async def test_a_unit_gives_way_once_and_keeps_its_batch(db: Database) -> None:
    """The second run goes to its end whatever waits; the units batched with the first
    run commit without it."""
    loop = asyncio.get_running_loop()
    big = BigUnit(db, loop)
    gate, first = await hold_the_writer(db)
    # Queued together: one batch of the message and a write batched with it.
    message = asyncio.ensure_future(as_client(ALICE, lambda: db.write(big, may_give_way=True)))
    beside = asyncio.ensure_future(db.write(streams.next_position))
    await asyncio.sleep(0.02)
    gate.set()
    assert await asyncio.wait_for(first, 5) == 1
    assert await asyncio.to_thread(big.running.wait, 5)
    dm = asyncio.ensure_future(
        as_client("@bob:localhost|LAPTOP", lambda: db.write(streams.next_position))
    )
    await asyncio.sleep(0.02)
    big.released.set()
    assert await asyncio.wait_for(beside, 5) == 2  # committed in the first run's batch
    assert await asyncio.wait_for(dm, 5) == 3
    assert await asyncio.wait_for(message, 5) == 4
    assert big.runs == 2
    recorder: Recorder = db.observer  # type: ignore[assignment]
    assert recorder.batches == [1, 1, 1, 1]


async def test_the_second_run_does_not_give_way(db: Database) -> None:
    loop = asyncio.get_running_loop()
    big = BigUnit(db, loop)
    second_run = threading.Event()
    second_released = asyncio.Event()

    def unit(conn: apsw.Connection) -> int:
        if big.runs == 1:  # the second run: hold it until another DM waits
            second_run.set()
            asyncio.run_coroutine_threadsafe(second_released.wait(), loop).result(5)
        return big(conn)

    message = asyncio.ensure_future(as_client(ALICE, lambda: db.write(unit, may_give_way=True)))
    assert await asyncio.to_thread(big.running.wait, 5)
    bob = "@bob:localhost|LAPTOP"
    first_dm = asyncio.ensure_future(as_client(bob, lambda: db.write(streams.next_position)))
    await asyncio.sleep(0.02)
    big.released.set()
    assert await asyncio.wait_for(first_dm, 5) == 1
    assert await asyncio.to_thread(second_run.wait, 5)
    second_dm = asyncio.ensure_future(as_client(bob, lambda: db.write(streams.next_position)))
    await asyncio.sleep(0.02)
    second_released.set()
    assert await asyncio.wait_for(message, 5) == 2
    assert await asyncio.wait_for(second_dm, 5) == 3
    assert big.runs == 2


@pytest.mark.parametrize("case", ["same client", "not offered", "background"])
async def test_a_unit_does_not_give_way(db: Database, case: str) -> None:
    """Not to the same client's next write (its writes keep their order), not when the
    unit was not written with may_give_way, and not to a background write."""
    big = BigUnit(db, asyncio.get_running_loop())
    message = asyncio.ensure_future(
        as_client(ALICE, lambda: db.write(big, may_give_way=case != "not offered"))
    )
    assert await asyncio.to_thread(big.running.wait, 5)
    key = ALICE if case == "same client" else "@bob:localhost|LAPTOP"
    other = asyncio.ensure_future(
        as_client(key, lambda: db.write(streams.next_position, background=case == "background"))
    )
    await asyncio.sleep(0.02)
    big.released.set()
    assert await asyncio.wait_for(message, 5) == 1
    assert await asyncio.wait_for(other, 5) == 2
    assert big.runs == 1


def test_give_way_outside_a_unit_does_nothing(db: Database) -> None:
    db.give_way()  # not on the writer thread, no unit: nothing to stop


async def test_a_unit_gives_way_to_another_clients_write_in_its_own_batch(
    db: Database,
) -> None:
    """A DM queued just before the big room's message started shares its batch, after
    it: the message gives way to it there too, and the DM commits without it."""
    loop = asyncio.get_running_loop()
    big = BigUnit(db, loop)
    gate, first = await hold_the_writer(db)
    message = asyncio.ensure_future(as_client(ALICE, lambda: db.write(big, may_give_way=True)))
    dm = asyncio.ensure_future(
        as_client("@bob:localhost|LAPTOP", lambda: db.write(streams.next_position))
    )
    await asyncio.sleep(0.02)
    gate.set()
    assert await asyncio.wait_for(first, 5) == 1
    assert await asyncio.to_thread(big.running.wait, 5)
    big.released.set()
    assert await asyncio.wait_for(dm, 5) == 2
    assert await asyncio.wait_for(message, 5) == 3
    assert big.runs == 2
    recorder: Recorder = db.observer  # type: ignore[assignment]
    assert recorder.batches == [1, 1, 1]


async def test_close_commits_a_unit_that_gave_way(tmp_path: Path) -> None:
    """close() while a unit is giving way: it runs again before the writer stops, with
    everything else queued (nothing is lost at shutdown)."""
    database = Database(tmp_path / "x.db")
    database.open()
    running, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def big(conn: apsw.Connection) -> int:
        runs.append(1)
        position = streams.next_position(conn)
        if len(runs) == 1:
            running.set()
            release.wait(5)
        database.give_way()
        return position

    message = asyncio.ensure_future(
        as_client(ALICE, lambda: database.write(big, may_give_way=True))
    )
    assert await asyncio.to_thread(running.wait, 5)
    dm = asyncio.ensure_future(
        as_client("@bob:localhost|LAPTOP", lambda: database.write(streams.next_position))
    )
    await asyncio.sleep(0.02)  # queued behind the message
    threading.Timer(0.05, release.set).start()  # after close() has asked the writer to stop
    database.close()
    assert await asyncio.wait_for(message, 5) == 1  # first in the last batch
    assert await asyncio.wait_for(dm, 5) == 2
    assert len(runs) == 2
    assert await position_after_reopening(tmp_path / "x.db") == 2
