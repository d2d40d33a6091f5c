"""`dendrite-lite`: set up, run and administer a homeserver from the terminal."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated

import apsw
import typer
from rich.table import Table

from dendrite_lite import __version__
from dendrite_lite.config import CONFIG_FILE, ConfigError, parse, render_default, split_listen
from dendrite_lite.data_dir import DataDirLocked, lock
from dendrite_lite.signing_key import ensure_signing_key
from dendrite_lite.storage import streams, users
from dendrite_lite.storage.db import Database

from .backup import backup, restore
from .common import (
    DEFAULT_DATA_DIR,
    EXIT_CONFIG,
    DataDir,
    console,
    fail,
    load_config,
    with_database,
)
from .email import app as email_app
from .media import app as media_app
from .oidc import app as oidc_app
from .registration_tokens import app as registration_tokens_app
from .users import app as users_app

app = typer.Typer(
    name="dendrite-lite",
    help="A Matrix homeserver in one Python process and one SQLite file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(users_app, name="user")
app.add_typer(registration_tokens_app, name="registration-token")
app.add_typer(oidc_app, name="oidc")
app.add_typer(media_app, name="media")
app.add_typer(email_app, name="email")
app.command("backup")(backup)
app.command("restore")(restore)


@app.command()
def init(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    server_name: Annotated[
        str, typer.Option(help="The name in user IDs (@alice:NAME); cannot change later.")
    ] = "localhost",
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "127.0.0.1:8008",
    open_registration: Annotated[
        bool, typer.Option("--open-registration", help="Let anyone create an account.")
    ] = False,
) -> None:
    """Create a data directory: a commented config.toml, the database and the signing key.

    Example: dendrite-lite init --data-dir /var/lib/dendrite-lite --server-name example.org
    """
    config_path = data_dir / CONFIG_FILE
    if config_path.exists():
        raise fail(f"{config_path} already exists; refusing to overwrite it")
    try:
        split_listen(listen)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    text = render_default(server_name, listen, open_registration)
    try:
        config = parse(text, data_dir)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    if config.database_path.exists():
        raise fail(f"{config.database_path} already exists; refusing to overwrite it")
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(text)

    async def create(db: Database) -> str:
        return await db.write(ensure_signing_key)

    key_id = with_database(config, create)
    console.print(
        f"[green]Initialised[/] {data_dir} for [bold]{server_name}[/] (signing key {key_id})"
    )
    console.print(f"Start it with: dendrite-lite run --data-dir {data_dir}")


@app.command()
def run(data_dir: DataDir = Path(DEFAULT_DATA_DIR)) -> None:
    """Run the homeserver in the foreground until stopped (SIGTERM or Ctrl-C).

    Example: dendrite-lite run --data-dir ./data
    """
    load_config(data_dir)  # a bad config fails here, with the CLI's error line
    try:
        lock(data_dir).close()  # a second server fails here too (the server re-checks)
    except DataDirLocked as exc:
        raise fail(str(exc)) from None
    # Serve from a fresh interpreter that never loads the CLI's libraries (smaller RSS);
    # exec keeps the PID, which systemd's Type=notify relies on.
    os.execv(  # noqa: S606 - exec our own interpreter on purpose
        sys.executable,
        [sys.executable, "-m", "dendrite_lite.server", "--data-dir", str(data_dir)],
    )


@app.command()
def status(data_dir: DataDir = Path(DEFAULT_DATA_DIR)) -> None:
    """Show the server name, users, rooms and database size.

    Example: dendrite-lite status
    """
    config = load_config(data_dir)

    async def gather(db: Database) -> tuple[int, int, int]:
        def read(conn: apsw.Connection) -> tuple[int, int, int]:
            rooms = 0
            if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rooms'"
            ).fetchone():
                rooms = int(conn.execute("SELECT count(*) FROM rooms").fetchone()[0])  # type: ignore[index]
            return users.count(conn), rooms, int(streams.current_position(conn))

        return await db.read(read)

    user_count, room_count, position = with_database(config, gather)
    size = sum(
        path.stat().st_size
        for path in config.database_path.parent.glob(config.database_path.name + "*")
        if re.search(r"\.db(-wal|-shm)?$", path.name)
    )
    table = Table(show_header=False, box=None)
    table.add_row("server name", config.server_name)
    table.add_row("listen", config.listen)
    table.add_row("registration", "open" if config.registration.enabled else "closed")
    table.add_row("users", str(user_count))
    table.add_row("rooms", str(room_count))
    table.add_row("stream position", str(position))
    table.add_row("database", f"{config.database_path} ({size / 1024 / 1024:.1f} MiB)")
    console.print(table)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()
