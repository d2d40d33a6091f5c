"""`dendrite-lite registration-token ...`: tokens for invite-only registration.

https://spec.matrix.org/latest/client-server-api/#token-authenticated-registration
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import apsw
import typer
from rich.table import Table

from dendrite_lite.clock import now_ms
from dendrite_lite.storage import registration_tokens

from .common import DEFAULT_DATA_DIR, DataDir, console, fail, load_config, with_database

app = typer.Typer(help="Manage registration tokens.", no_args_is_help=True)

_RANDOM_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# The spec's grammar for tokens: [A-Za-z0-9._~-]{1,64}. Random ones use letters and
# digits only, so that none begins with "-" (which `registration-token revoke` would
# take for an option) and all read out loud well.
_TOKEN_CHARS = _RANDOM_TOKEN_CHARS + "._~-"


@app.command("create")
def create(
    token: Annotated[
        str | None, typer.Option(help="The token text; random when not given.")
    ] = None,
    uses: Annotated[
        int | None, typer.Option(help="How many registrations it allows; unlimited if not given.")
    ] = None,
    expires_in_days: Annotated[
        float | None, typer.Option(help="Days until it expires; never if not given.")
    ] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Create a registration token.

    Example: dendrite-lite registration-token create --uses 5 --expires-in-days 7
    """
    config = load_config(data_dir)
    value = token or "".join(secrets.choice(_RANDOM_TOKEN_CHARS) for _ in range(16))
    if not (0 < len(value) <= 64) or any(c not in _TOKEN_CHARS for c in value):
        raise fail("a token is 1-64 characters of A-Z a-z 0-9 . _ ~ -", 2)
    if uses is not None and uses < 1:
        raise fail("--uses must be at least 1", 2)
    now = now_ms()
    expiry = now + int(expires_in_days * 86_400_000) if expires_in_days is not None else None

    def insert(conn: apsw.Connection) -> bool:
        if registration_tokens.get(conn, value) is not None:
            return False
        registration_tokens.insert(conn, value, uses, expiry, now)
        return True

    if not with_database(config, lambda db: db.write(insert)):
        raise fail(f"token {value} already exists")
    console.print(value, highlight=False)


@app.command("list")
def list_tokens(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List registration tokens and their use.

    Example: dendrite-lite registration-token list
    """
    config = load_config(data_dir)
    rows = with_database(config, lambda db: db.read(registration_tokens.list_all))
    now = now_ms()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "token": row.token,
                        "uses_allowed": row.uses_allowed,
                        "completed": row.completed,
                        "expiry_time": row.expiry_ts,
                        "valid": row.is_valid(now),
                    }
                    for row in rows
                ]
            )
        )
        return
    table = Table("token", "used", "allowed", "expires", "valid")
    for row in rows:
        expires = (
            datetime.fromtimestamp(row.expiry_ts / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if row.expiry_ts is not None
            else "never"
        )
        allowed = str(row.uses_allowed) if row.uses_allowed is not None else "unlimited"
        table.add_row(
            row.token, str(row.completed), allowed, expires, "yes" if row.is_valid(now) else "no"
        )
    console.print(table)


@app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="The token to delete")],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Delete a registration token; registrations in progress with it then fail.

    Example: dendrite-lite registration-token revoke abc123
    """
    config = load_config(data_dir)
    if not with_database(
        config, lambda db: db.write(lambda conn: registration_tokens.delete(conn, token))
    ):
        raise fail(f"no token {token}")
    console.print(f"[green]Revoked[/] {token}")
