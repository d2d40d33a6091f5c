"""Server-side timestamps of the message path, for bench/answer_times.py.

Put this directory on PYTHONPATH and set DENDRITE_ANSWER_TRACE=FILE in the environment
of a dendrite-lite server (bench_load.py passes its environment on):

    PYTHONPATH=$PWD/bench/answer_trace DENDRITE_ANSWER_TRACE=/tmp/answers.txt \
        .venv/bin/python bench/bench_load.py --servers dendrite --runs 1

Every request of the fast lane (api/fast_lane.py: `PUT .../send/...`, `GET /sync`, the
sliding sync `POST`) is recorded as one line "start_ns end_ns kind arrived_ns path"
(perf_counter, so comparable with a client's on the same host; path only for sends),
the end being when the handler has handed its answer to the transport and `arrived`
when uvicorn began parsing the request (before its handler starts: reading the head
and the body, ~0.2-0.4 ms here). Benchmark tooling only: the
product never imports it, and without the variable it does nothing.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

OUT = os.environ.get("DENDRITE_ANSWER_TRACE")
TARGET = "dendrite_lite.api.fast_lane"
_records: list[tuple[int, int, str, int, str]] = []
ARRIVED = "answer_trace.arrived"


def _note_arrivals() -> None:
    """uvicorn's protocol notes when it begins parsing each request; the scope built at
    the end of its head carries it to the handler."""
    from uvicorn.protocols.http import httptools_impl

    protocol = httptools_impl.HttpToolsProtocol
    begin, headers_complete = protocol.on_message_begin, protocol.on_headers_complete

    def on_message_begin(self: Any) -> None:
        self._answer_trace_arrived = time.perf_counter_ns()
        begin(self)

    def on_headers_complete(self: Any) -> None:
        headers_complete(self)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope.setdefault("extensions", {})[ARRIVED] = getattr(self, "_answer_trace_arrived", 0)

    protocol.on_message_begin = on_message_begin  # type: ignore[method-assign]
    protocol.on_headers_complete = on_headers_complete  # type: ignore[method-assign]


def _patch(module: ModuleType) -> None:
    _note_arrivals()
    lane = module.FastLane
    for attr, kind in (("_send", "send"), ("_sync", "sync"), ("_sliding_sync", "sss")):
        original = getattr(lane, attr)

        async def traced(
            self: Any,
            scope: Any,
            receive: Any,
            send: Any,
            *,
            _original: Any = original,
            _kind: str = kind,
        ) -> None:
            started = time.perf_counter_ns()
            try:
                await _original(self, scope, receive, send)
            finally:
                path = scope["path"] if _kind == "send" else ""
                arrived = scope.get("extensions", {}).get(ARRIVED) or started
                _records.append((started, time.perf_counter_ns(), _kind, arrived, path))

        setattr(lane, attr, traced)
    # Only the server writes the file (every Python process of the benchmark that
    # inherits the environment loads this module).
    atexit.register(_dump)
    threading.Thread(target=_dump_every, args=(5.0,), daemon=True).start()


def _dump() -> None:
    assert OUT is not None
    with open(OUT, "w") as f:
        for started, ended, kind, arrived, path in list(_records):
            f.write(f"{started} {ended} {kind} {arrived} {path}\n")


def _dump_every(seconds: float) -> None:
    while True:
        time.sleep(seconds)
        _dump()


class PatchAfterImport(importlib.abc.MetaPathFinder):
    """Runs `patch(module)` right after the module named `target` is first imported
    (bench/hop_trace uses it too)."""

    def __init__(self, target: str, patch: Callable[[ModuleType], None]) -> None:
        self.target = target
        self.patch = patch

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.target:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            self.patch(module)

        loader.exec_module = exec_module
        return spec


if OUT:
    sys.meta_path.insert(0, PatchAfterImport(TARGET, _patch))
