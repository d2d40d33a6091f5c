"""Server-side timestamps of every hop of the message path, for bench/hop_times.py.

Put this directory on PYTHONPATH and set DENDRITE_HOP_TRACE=PREFIX in the environment
of a dendrite-lite server (the benches pass their environment on):

    PYTHONPATH=$PWD/bench/hop_trace DENDRITE_HOP_TRACE=/tmp/hops \
        .venv/bin/python bench/bench_sliding_sync.py --servers dendrite
    .venv/bin/python bench/hop_times.py single /tmp/hops.*

Each server process writes PREFIX.PID (every 2 s and at exit), one line per event:
"perf_counter_ns name thread detail". Spans are "name>" and "name<": uvicorn reading a
request (`http`), the fast lane's handlers (`send`, `sync`, `sss`, and `*_answer` when
the body is handed to the transport), the writer's batches (`batch`, detail: units,
D = durable or bg, unit names), the arrival-order wait (`order`), the WAL flush
(`flush`), telling outcomes (`tell`), the event pipeline (`create`, `persist`) and the
steps of building an event (`roomget`, `fwdext`, `entries`, `loadpdus`, `finalise`,
`checkauth`), push (`push`, `members`, `evaluate`, `record`), the long-polls' reads
(`compute`), a room's hot data built during one (`snapshot`), a read's outcome handed
to the loop (`answerread`) and the loop taking outcomes (`resolve`), sliding sync's
answer after its read (`finish`, `unstable`), the garbage collector's passes (`gc`,
detail: the generation), the WAL's length after each commit (`wal`, detail: frames) and
the WAL checkpoints (`checkpoint`). A name
the traced build lacks is skipped, so an older git ref can be traced too (--git-ref).
Benchmark tooling only: the product never imports it, and without the variable it does
nothing. The tracer's own cost is ~5-10 us an event.
"""

from __future__ import annotations

import atexit
import gc
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OUT = os.environ.get("DENDRITE_HOP_TRACE")
_events: list[tuple[int, str, str, str]] = []


def _rec(name: str, detail: str = "") -> None:
    _events.append((time.perf_counter_ns(), name, threading.current_thread().name, detail))


_dumped = 0  # events written so far: each dump appends the newer ones
_dump_lock = threading.Lock()


def _dump() -> None:
    global _dumped
    with _dump_lock:
        newer = _events[_dumped:]
        if not newer:
            return
        with open(f"{OUT}.{os.getpid()}", "a" if _dumped else "w") as out:
            for t, name, thread, detail in newer:
                out.write(f"{t} {name} {thread} {detail}\n")
        _dumped += len(newer)


def _span(owner: Any, attr: str, label: str, detail: Callable[..., str] | None = None) -> None:
    original = getattr(owner, attr, None)
    if original is None:
        return

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _rec(label + ">", detail(*args, **kwargs) if detail else "")
        try:
            return original(*args, **kwargs)
        finally:
            _rec(label + "<")

    setattr(owner, attr, wrapped)


def _handler(owner: Any, attr: str, label: str) -> None:
    """An ASGI handler of the fast lane: its start, and when its answer's body leaves."""
    original = getattr(owner, attr, None)
    if original is None:
        return

    async def wrapped(self: Any, scope: Any, receive: Any, send: Any) -> None:
        tag = scope.get("path", "").rsplit("/", 1)[-1] if label == "send" else ""
        _rec(label + ">", tag)

        async def traced_send(message: Any) -> None:
            if message.get("type") == "http.response.body":
                _rec(label + "_answer", tag)
            await send(message)

        await original(self, scope, receive, traced_send)

    setattr(owner, attr, wrapped)


def _batch_detail(_self: Any, _conn: Any, batch: Sequence[Any], durable: bool = True) -> str:
    names = ",".join(getattr(j.fn, "__qualname__", "?").rsplit(".", 1)[-1] for j in batch[:4])
    return f"{len(batch)} {'D' if durable else 'bg'} {names}"


def _install() -> None:
    from uvicorn.protocols.http import httptools_impl

    from dendrite_lite.api import fast_lane
    from dendrite_lite.push import hook
    from dendrite_lite.rooms import pipeline
    from dendrite_lite.sliding_sync import room_cache
    from dendrite_lite.sliding_sync import service as sliding_sync
    from dendrite_lite.storage import db
    from dendrite_lite.sync import service as sync

    _span(httptools_impl.HttpToolsProtocol, "data_received", "http")
    _handler(fast_lane.FastLane, "_send", "send")
    _handler(fast_lane.FastLane, "_sync", "sync")
    _handler(fast_lane.FastLane, "_sliding_sync", "sss")
    _span(db.Database, "_commit_batch", "batch", _batch_detail)
    _span(db.Database, "_wait_for_earlier_reads", "order")
    _span(db.Database, "_flush_wal", "flush")
    _span(db.Database, "_tell", "tell", lambda _self, done: str(len(done)))
    _span(pipeline.EventCreator, "create", "create")
    _span(pipeline.EventCreator, "_persist", "persist")
    _span(hook.PushHook, "on_event", "push")
    _span(hook.PushHook, "_evaluate", "evaluate")
    if hasattr(hook, "room_state"):
        _span(hook.room_state, "members", "members")
    if hasattr(hook, "store"):
        _span(hook.store, "record", "record")
    _span(sliding_sync.SlidingSync, "_compute", "compute")
    _span(room_cache, "build", "snapshot")  # a room's hot data built, not cached
    # The steps of building an event (EventCreator.create), and of a sliding sync answer
    # after its read: where the writer's and the loop's shares of a delivery go.
    _span(pipeline, "load_pdus", "loadpdus")
    _span(pipeline, "check_auth", "checkauth")
    _span(pipeline.EventCreator, "_finalise", "finalise")
    for module, attr, label in (
        ("room_state", "current_entries", "entries"),
        ("events", "forward_extremities", "fwdext"),
        ("rooms", "get", "roomget"),
    ):
        if hasattr(pipeline, module):
            _span(getattr(pipeline, module), attr, label)
    _span(sliding_sync.SlidingSync, "_finish", "finish")
    _span(fast_lane, "unstable_response", "unstable")
    _span(sync.Sync, "_compute", "compute")
    # A read's outcome handed to the loop (or held behind a flush), and the loop running
    # the outcomes posted to it: the hand-over from a thread to the loop.
    _span(db.Database, "_answer_read", "answerread")
    if hasattr(db.Database, "_read_here"):  # a short read, on the event loop
        _span(db.Database, "_read_here", "readhere")
    _span(db, "_resolve", "resolve", lambda results: str(len(results)))
    # The WAL's length in frames after each commit (what a checkpoint will copy).
    _span(db.Database, "_wal_hook", "wal", lambda _self, _conn, _name, pages: str(pages))
    # What no request's thread shows: the collector's passes and the WAL checkpoints.
    gc.callbacks.append(_gc_phase)
    checkpointer = db.Database._checkpointer_main

    def traced_checkpointer(self: Any, conn: Any) -> None:
        checkpointer(self, _CheckpointConnection(conn))

    db.Database._checkpointer_main = traced_checkpointer


def _gc_phase(phase: str, info: dict[str, int]) -> None:
    _rec("gc>" if phase == "start" else "gc<", str(info.get("generation")))


class _CheckpointConnection:
    """The checkpointer's connection, with each statement recorded as `checkpoint`."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, *args: Any) -> Any:
        _rec("checkpoint>")
        try:
            return self._conn.execute(*args)
        finally:
            _rec("checkpoint<")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _after_import_hook() -> Any:
    """bench/answer_trace's PatchAfterImport, loaded from its file (both directories are
    named for PYTHONPATH, so neither can import the other by name)."""
    path = Path(__file__).resolve().parent.parent / "answer_trace" / "sitecustomize.py"
    spec = importlib.util.spec_from_file_location("_answer_trace_hook", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PatchAfterImport


def _every_two_seconds() -> None:
    while True:
        time.sleep(2)
        _dump()


if OUT:
    atexit.register(_dump)
    threading.Thread(target=_every_two_seconds, daemon=True, name="hop-trace").start()
    # dendrite_lite.app imports everything the spans wrap
    sys.meta_path.insert(0, _after_import_hook()("dendrite_lite.app", lambda _app: _install()))
