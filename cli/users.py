"""`dendrite-lite user ...`: local accounts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import apsw
import typer
from rich.table import Table

from dendrite_lite.accounts.account import deactivate_user
from dendrite_lite.accounts.registration import check_password_strength, create_user
from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.errors import MatrixError
from dendrite_lite.identifiers import local_user_id
from dendrite_lite.storage import devices, users
from dendrite_lite.storage.db import Database
from dendrite_lite.threepid.addresses import canonical_email
from dendrite_lite.types import UserId

from .common import DEFAULT_DATA_DIR, DataDir, console, fail, load_config, with_database

app = typer.Typer(help="Manage local accounts.", no_args_is_help=True)

Password = Annotated[
    str | None,
    typer.Option(
        "--password",
        help="The password; prompted for (hidden) when not given.",
        envvar="DENDRITE_LITE_PASSWORD",
    ),
]


def _ask_password(password: str | None) -> str:
    if password is not None:
        return password
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@app.command("add")
def add(
    localpart: Annotated[str, typer.Argument(help="The user's name, e.g. alice")],
    password: Password = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user a server admin.")] = False,
    email: Annotated[
        str | None,
        typer.Option("--email", help="An email address for login and password reset."),
    ] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Create a local account.

    Example: dendrite-lite user add alice --admin --email alice@example.org
    """
    config = load_config(data_dir)
    secret = _ask_password(password)
    passwords = Passwords(config.auth)
    try:
        address = canonical_email(email) if email is not None else None
        check_password_strength(secret, passwords.min_length)
        user_id = with_database(
            config,
            lambda db: create_user(
                db,
                passwords,
                config.server_name,
                localpart.lower(),
                secret,
                admin=admin,
                email=address,
            ),
        )
    except MatrixError as exc:
        raise fail(exc.message) from None
    console.print(f"[green]Created[/] {user_id}{' (admin)' if admin else ''}")
    if address is not None:
        console.print(f"with email {address}")


@app.command("list")
def list_users(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    deactivated: Annotated[bool, typer.Option(help="Include deactivated accounts.")] = True,
) -> None:
    """List local accounts.

    Example: dendrite-lite user list --json
    """
    config = load_config(data_dir)
    rows = with_database(
        config,
        lambda db: db.read(
            lambda conn: users.list_all(conn, include_deactivated=deactivated, limit=100_000)
        ),
    )
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "user_id": row.user_id,
                        "admin": row.is_admin,
                        "guest": row.is_guest,
                        "deactivated": row.deactivated,
                        "created_ts": row.created_ts,
                    }
                    for row in rows
                ]
            )
        )
        return
    table = Table("user", "admin", "guest", "deactivated")
    for row in rows:
        table.add_row(row.user_id, _yes(row.is_admin), _yes(row.is_guest), _yes(row.deactivated))
    console.print(table)


def _resolve(user: str, server_name: str) -> UserId:
    user_id = local_user_id(user, server_name)
    if user_id is None:
        raise fail(f"{user} is not a user of {server_name}")
    return user_id


@app.command("set-password")
def set_password(
    user: Annotated[str, typer.Argument(help="Localpart or full user ID")],
    password: Password = None,
    keep_devices: Annotated[
        bool, typer.Option("--keep-devices", help="Do not log out the user's devices.")
    ] = False,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Set a user's password (and log out their devices).

    Example: dendrite-lite user set-password alice
    """
    config = load_config(data_dir)
    user_id = _resolve(user, config.server_name)
    secret = _ask_password(password)
    passwords = Passwords(config.auth)
    try:
        check_password_strength(secret, passwords.min_length)
    except MatrixError as exc:
        raise fail(exc.message) from None
    password_hash = passwords.hash_sync(secret)

    async def work(db: Database) -> bool:
        def update(conn: apsw.Connection) -> bool:
            row = users.get(conn, user_id)
            if row is None or row.deactivated:
                return False
            users.set_password_hash(conn, user_id, password_hash)
            if not keep_devices:
                devices.delete_all(conn, user_id)
            return True

        return await db.write(update)

    if not with_database(config, work):
        raise fail(f"no active user {user_id}")
    console.print(f"[green]Password set[/] for {user_id}")


@app.command("deactivate")
def deactivate(
    user: Annotated[str, typer.Argument(help="Localpart or full user ID")],
    erase: Annotated[bool, typer.Option("--erase", help="Also erase the profile.")] = False,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Deactivate an account for good: no login, no devices.

    Example: dendrite-lite user deactivate mallory --erase
    """
    config = load_config(data_dir)
    user_id = _resolve(user, config.server_name)
    if not with_database(config, lambda db: deactivate_user(db, user_id, erase=erase)):
        raise fail(f"no user {user_id}")
    console.print(f"[green]Deactivated[/] {user_id}")


@app.command("set-admin")
def set_admin(
    user: Annotated[str, typer.Argument(help="Localpart or full user ID")],
    admin: Annotated[bool, typer.Argument(help="true or false")] = True,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Grant or revoke server admin rights.

    Example: dendrite-lite user set-admin alice false
    """
    config = load_config(data_dir)
    user_id = _resolve(user, config.server_name)

    async def work(db: Database) -> bool:
        return await db.write(lambda conn: users.set_admin(conn, user_id, admin))

    if not with_database(config, work):
        raise fail(f"no user {user_id}")
    console.print(f"{user_id} is {'now' if admin else 'no longer'} an admin")


def _yes(value: bool) -> str:
    return "yes" if value else ""
