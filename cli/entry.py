"""The `dendrite-lite` console script: `run` takes a short path, everything else typer.

`dendrite-lite run` only checks the config and the data-dir lock, then execs the
server (`python -m dendrite_lite.server`). Importing typer, rich and the other commands
first would cost the start of every server (a few tenths of a second here, about a
second on a Raspberry Pi) for nothing.
"""

from __future__ import annotations

import os
import sys

from dendrite_lite.config import ConfigError, load
from dendrite_lite.data_dir import DataDirLocked, lock

EXIT_FAILED = 1
EXIT_CONFIG = 2

MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _run_data_dir(args: list[str]) -> str | None:
    """The data dir of a plain `run [--data-dir DIR]`; None: let typer handle it."""
    data_dir = os.environ.get("DENDRITE_LITE_DATA_DIR", "./data")
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--data-dir" and rest:
            data_dir = rest.pop(0)
        elif arg.startswith("--data-dir="):
            data_dir = arg.partition("=")[2]
        else:
            return None  # --help, typos, anything else: typer answers
    return data_dir


def main() -> None:
    args = sys.argv[1:]
    data_dir = _run_data_dir(args[1:]) if args[:1] == ["run"] else None
    if data_dir is None:
        from dendrite_lite.cli.main import main as typer_main

        typer_main()
        return
    try:
        load(data_dir)
    except ConfigError as exc:
        print(f"error: config: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    try:
        lock(data_dir).close()  # a second server fails here (the server checks again)
    except DataDirLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    # glibc gives each thread that allocates an arena of its own (up to 8 per core); the
    # reader and writer threads then leave freed memory spread over many heaps. Two
    # arenas kept the RSS after a 500-room /sync run at 106 MiB instead of 124. glibc
    # reads this when the process starts, hence here, before the exec.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # glibc raises its mmap threshold each time a big block is freed, so later big
    # buffers (a 3 MB initial /sync answer) land in the heap and leave it fragmented.
    # A fixed threshold keeps them in mmap, given back to the kernel when freed: RSS
    # after a 500-room sliding sync run 110 -> 96 MiB (77 with the database defaults).
    for name, value in MALLOC_SETTINGS.items():
        os.environ.setdefault(name, value)
    # exec keeps the PID, which systemd's Type=notify relies on.
    os.execv(  # noqa: S606 - exec our own interpreter on purpose
        sys.executable, [sys.executable, "-m", "dendrite_lite.server", "--data-dir", data_dir]
    )
