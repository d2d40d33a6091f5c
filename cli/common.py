"""What every command shares: the data-dir option, consoles, and the Database."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from dendrite_lite.config import Config, ConfigError, load
from dendrite_lite.storage.db import Database, DatabaseSettings
from dendrite_lite.storage.migrations import SchemaTooNew

T = TypeVar("T")

console = Console()
# Errors are one line whatever the width: logs and pipes must not get them wrapped.
err_console = Console(stderr=True, soft_wrap=True)

DEFAULT_DATA_DIR = "./data"

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="DENDRITE_LITE_DATA_DIR",
        help="Directory holding config.toml and homeserver.db.",
        show_default=True,
    ),
]

# Exit codes: 0 ok, 1 the operation failed, 2 bad configuration or usage.
EXIT_FAILED = 1
EXIT_CONFIG = 2


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def load_config(data_dir: Path) -> Config:
    try:
        return load(data_dir)
    except ConfigError as exc:
        raise fail(f"config: {exc}", EXIT_CONFIG) from None


def with_database(config: Config, work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the server's database for one command (alongside a running server is fine)."""

    async def run() -> T:
        db = Database(
            config.database_path,
            DatabaseSettings(synchronous=config.database.synchronous, reader_threads=1),
        )
        try:
            db.open()
        except SchemaTooNew as exc:
            raise fail(str(exc)) from None
        try:
            return await work(db)
        finally:
            db.close()

    return asyncio.run(run())


def env_data_dir() -> Path:
    return Path(os.environ.get("DENDRITE_LITE_DATA_DIR", DEFAULT_DATA_DIR))
