"""`dendrite-lite backup` / `restore`: the SQLite online backup API, safe while serving.

The backup reads through one open read transaction, so it copies one consistent
snapshot even while the server keeps writing (WAL mode lets both proceed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import apsw
import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from dendrite_lite.data_dir import DataDirLocked, lock
from dendrite_lite.storage.migrations import SCHEMA_VERSION

from .common import DEFAULT_DATA_DIR, DataDir, console, fail, load_config

PAGES_PER_STEP = 256


def _copy(source: apsw.Connection, dest_path: Path, label: str) -> None:
    """Copy `source` into a new file at dest_path, with a progress bar."""
    dest = apsw.Connection(str(dest_path))
    try:
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchall()  # pins the snapshot
        with (
            dest.backup("main", source, "main") as job,
            Progress(
                TextColumn(label),
                BarColumn(),
                TaskProgressColumn(),
                console=console,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task(label, total=None)
            while not job.done:
                job.step(PAGES_PER_STEP)
                progress.update(
                    task, total=job.page_count, completed=job.page_count - job.remaining
                )
        source.execute("COMMIT")
        dest.pragma("journal_mode", "delete")
    finally:
        dest.close()
    with open(dest_path, "rb") as handle:
        os.fsync(handle.fileno())


def _check(path: Path) -> None:
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            result = conn.execute("PRAGMA quick_check").fetchall()
            version = int(conn.pragma("user_version"))
        finally:
            conn.close()
    except apsw.Error as exc:
        raise fail(f"{path} is not a readable SQLite database ({exc})") from None
    if result != [("ok",)]:
        raise fail(f"{path} failed its integrity check: {result[:3]}")
    if version == 0 or version > SCHEMA_VERSION:
        raise fail(
            f"{path} is not a dendrite-lite database this version can use (schema {version})"
        )


def backup(
    destination: Annotated[Path, typer.Argument(help="File to write the backup to")],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    force: Annotated[bool, typer.Option("--force", help="Overwrite DESTINATION.")] = False,
) -> None:
    """Write a consistent copy of the whole server (one file) while it keeps running.

    Example: dendrite-lite backup /mnt/usb/homeserver-2026-11-28.db
    """
    config = load_config(data_dir)
    if destination.exists():
        if not force:
            raise fail(f"{destination} exists; use --force to overwrite it")
        destination.unlink()
    if not config.database_path.exists():
        raise fail(f"{config.database_path} does not exist")
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    source = apsw.Connection(str(config.database_path), flags=apsw.SQLITE_OPEN_READWRITE)
    source.setbusytimeout(10_000)
    try:
        _copy(source, partial, "backing up")
    finally:
        source.close()
    _check(partial)
    partial.replace(destination)
    size = destination.stat().st_size / 1024 / 1024
    console.print(f"[green]Backed up[/] {config.database_path} to {destination} ({size:.1f} MiB)")


def restore(
    source: Annotated[Path, typer.Argument(help="A file written by `dendrite-lite backup`")],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing database.")] = False,
) -> None:
    """Replace the server's database with a backup. The server must be stopped.

    Example: dendrite-lite restore /mnt/usb/homeserver-2026-11-28.db --force
    """
    config = load_config(data_dir)
    if not source.is_file():
        raise fail(f"{source} is not a file")
    _check(source)
    try:
        held = lock(data_dir)
    except DataDirLocked as exc:
        raise fail(f"{exc}; stop it before restoring") from None
    try:
        target = config.database_path
        if target.exists() and not force:
            raise fail(f"{target} exists; use --force to replace it")
        staged = target.with_name(target.name + ".restoring")
        staged.unlink(missing_ok=True)
        src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            _copy(src, staged, "restoring")
        finally:
            src.close()
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        staged.replace(target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        held.close()
    console.print(f"[green]Restored[/] {source} into {config.database_path}")
