"""`dendrite-lite oidc ...`: upstream OpenID Connect providers, account links and the
OAuth clients registered with the built-in authorization server (docs/auth.md)."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from pathlib import Path
from typing import Annotated

import apsw
import msgspec
import typer
from rich.table import Table

from dendrite_lite.clock import now_ms
from dendrite_lite.config import CONFIG_FILE, ConfigError, OAuthUpstreamConfig, parse
from dendrite_lite.identifiers import local_user_id
from dendrite_lite.oauth.clients import ClientMetadata
from dendrite_lite.storage import devices, oauth, users
from dendrite_lite.storage.db import Database

from .common import (
    DEFAULT_DATA_DIR,
    EXIT_CONFIG,
    DataDir,
    console,
    fail,
    load_config,
    with_database,
)

app = typer.Typer(
    help="OpenID Connect providers, account links and OAuth clients.", no_args_is_help=True
)
provider_app = typer.Typer(
    help="Upstream OpenID Connect providers ([[oauth.upstream]]).", no_args_is_help=True
)
app.add_typer(provider_app, name="provider")

_TABLE_HEADER = re.compile(r"^\s*\[")
_UPSTREAM_HEADER = re.compile(r"^\s*\[\[\s*oauth\.upstream\s*\]\]\s*$")
_ID_LINE = re.compile(r'^\s*id\s*=\s*"([^"]*)"')


def _config_path(data_dir: Path) -> Path:
    return data_dir / CONFIG_FILE


def _write_checked(data_dir: Path, text: str) -> None:
    """Write config.toml only if the result is a valid config."""
    try:
        parse(text, data_dir)
    except ConfigError as exc:
        raise fail(f"config: {exc}", EXIT_CONFIG) from None
    _config_path(data_dir).write_text(text)


def _provider(data_dir: Path, provider_id: str) -> OAuthUpstreamConfig:
    config = load_config(data_dir)
    for provider in config.oauth.upstream:
        if provider.id == provider_id:
            return provider
    raise fail(f"no provider {provider_id!r} in {_config_path(data_dir)}")


@provider_app.command("list")
def list_providers(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """List the configured upstream providers.

    Example: dendrite-lite oidc provider list
    """
    providers = load_config(data_dir).oauth.upstream
    if as_json:
        rows = [
            {k: v for k, v in msgspec.to_builtins(p).items() if k != "client_secret"}
            for p in providers
        ]
        console.print_json(json.dumps(rows))
        return
    table = Table("id", "name", "issuer", "client id", "scopes")
    for p in providers:
        table.add_row(p.id, p.name or p.id, p.issuer, p.client_id, " ".join(p.scopes))
    console.print(table)


@provider_app.command("add")
def add_provider(
    provider_id: Annotated[str, typer.Argument(help="Short id used in URLs, e.g. keycloak")],
    issuer: Annotated[
        str,
        typer.Option(
            help="The issuer URL (discovery at <issuer>/.well-known/openid-configuration)."
        ),
    ],
    client_id: Annotated[str, typer.Option(help="The client id registered at the provider.")],
    client_secret: Annotated[
        str,
        typer.Option(
            help="The client secret (empty: a public client, PKCE only).",
            envvar="DENDRITE_LITE_OIDC_SECRET",
        ),
    ] = "",
    name: Annotated[str, typer.Option(help='Shown as "Sign in with NAME".')] = "",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Scopes to ask for (repeat); default openid profile email."),
    ] = None,
    on_existing: Annotated[
        str, typer.Option(help="When the name is taken: link, refuse or password.")
    ] = "password",
    allow_insecure: Annotated[
        bool, typer.Option("--allow-insecure", help="Allow an http:// or private issuer.")
    ] = False,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Add an upstream provider to config.toml (restart the server to use it).

    Example: dendrite-lite oidc provider add keycloak --client-id matrix
    --issuer https://sso.example.org/realms/home --client-secret ...
    """
    config = load_config(data_dir)
    if any(p.id == provider_id for p in config.oauth.upstream):
        raise fail(f"provider {provider_id!r} exists already")
    values: dict[str, object] = {
        "id": provider_id,
        "name": name or provider_id,
        "issuer": issuer,
        "client_id": client_id,
        "client_secret": client_secret,
        "scopes": scope or ["openid", "profile", "email"],
        "on_existing": on_existing,
        "allow_insecure": allow_insecure,
    }
    block = "\n[[oauth.upstream]]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in values.items()
    )
    text = _config_path(data_dir).read_text()
    _write_checked(data_dir, text.rstrip("\n") + "\n" + block)
    console.print(f"[green]Added[/] provider {provider_id}; restart the server to use it.")


@provider_app.command("remove")
def remove_provider(
    provider_id: Annotated[str, typer.Argument(help="The provider's id")],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Remove an upstream provider from config.toml (its account links stay, unused).

    Example: dendrite-lite oidc provider remove keycloak
    """
    _provider(data_dir, provider_id)
    lines = _config_path(data_dir).read_text().splitlines(keepends=True)
    kept: list[str] = []
    index = 0
    while index < len(lines):
        if _UPSTREAM_HEADER.match(lines[index]):
            end = index + 1
            while end < len(lines) and not _TABLE_HEADER.match(lines[end]):
                end += 1
            block = lines[index:end]
            if any((m := _ID_LINE.match(line)) and m.group(1) == provider_id for line in block):
                index = end
                continue
            kept.extend(block)
            index = end
            continue
        kept.append(lines[index])
        index += 1
    _write_checked(data_dir, "".join(kept))
    console.print(f"[green]Removed[/] provider {provider_id}; restart the server to apply.")


@provider_app.command("test")
def test_provider(
    provider_id: Annotated[str, typer.Argument(help="The provider's id")],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Fetch the provider's discovery document and JWKS, and show what was found.

    Example: dendrite-lite oidc provider test keycloak
    """
    from dendrite_lite.oauth.upstream import UpstreamError, fetch_discovery

    config = load_config(data_dir)
    provider = _provider(data_dir, provider_id)
    try:
        metadata, jwks = asyncio.run(fetch_discovery(provider))
    except UpstreamError as exc:
        raise fail(f"{provider_id}: {exc.reason}") from None
    table = Table(show_header=False, box=None)
    table.add_row("issuer", str(metadata["issuer"]))
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        table.add_row(key, str(metadata.get(key, "-")))
    keys = jwks.get("keys", [])
    table.add_row(
        "signing keys",
        ", ".join(f"{k.get('kid', '?')} ({k.get('alg', k.get('kty'))})" for k in keys),
    )
    methods = metadata.get("code_challenge_methods_supported", [])
    table.add_row("PKCE S256", "yes" if "S256" in methods else "not advertised")
    table.add_row("callback URL to register", config.base_url + "/oauth2/upstream/callback")
    console.print(table)
    console.print(f"[green]OK[/] {provider_id}: discovery and {len(keys)} key(s) fetched.")


@app.command("link")
def link(
    user: Annotated[str, typer.Argument(help="The local user: alice or @alice:example.org")],
    provider: Annotated[str, typer.Option(help="The provider's id")],
    subject: Annotated[str, typer.Option(help="The user's subject (sub claim) at the provider")],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Link a local account to a subject of an upstream provider (migrating password users).

    Example: dendrite-lite oidc link alice --provider keycloak --subject 6c2f0e1a-...
    """
    config = load_config(data_dir)
    _provider(data_dir, provider)
    uid = local_user_id(user, config.server_name)
    if uid is None:
        raise fail(f"{user} is not a user of {config.server_name}")

    async def do_link(db: Database) -> bool:
        def unit(conn: apsw.Connection) -> bool:
            if users.get(conn, uid) is None:
                return False
            oauth.link(conn, provider, subject, uid, now_ms())
            return True

        return await db.write(unit)

    if not with_database(config, do_link):
        raise fail(f"no user {uid}")
    console.print(f"[green]Linked[/] {uid} to {provider} subject {subject}")


@app.command("clients")
def clients(
    revoke: Annotated[
        str | None,
        typer.Option(help="Revoke this client: its sessions (devices) end and it is forgotten."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """List the OAuth clients registered with the server, or revoke one.

    Example: dendrite-lite oidc clients --revoke dl2f6c...
    """
    config = load_config(data_dir)
    if revoke is not None:

        async def do_revoke(db: Database) -> int | None:
            def unit(conn: apsw.Connection) -> int | None:
                if oauth.get_client(conn, revoke) is None:
                    return None
                sessions = oauth.client_devices(conn, revoke)
                for user_id, device_id in sessions:
                    devices.delete(conn, user_id, [device_id])
                oauth.delete_client(conn, revoke)
                return len(sessions)

            return await db.write(unit)

        ended = with_database(config, do_revoke)
        if ended is None:
            raise fail(f"no client {revoke}")
        console.print(f"[green]Revoked[/] {revoke}: {ended} session(s) ended")
        return

    async def read(db: Database) -> list[oauth.ClientRow]:
        return await db.read(oauth.list_clients)

    rows = with_database(config, read)
    found = [(row, msgspec.json.decode(row.metadata, type=ClientMetadata)) for row in rows]
    if as_json:
        answer = [
            {**meta.answer(), "sessions": row.sessions, "created_ts": row.created_ts}
            for row, meta in found
        ]
        console.print_json(json.dumps(answer))
        return
    table = Table("client id", "name", "client uri", "type", "sessions", "registered")
    for row, meta in found:
        when = datetime.datetime.fromtimestamp(row.created_ts / 1000, tz=datetime.UTC)
        table.add_row(
            row.client_id,
            meta.client_name or "",
            meta.client_uri,
            meta.application_type,
            str(row.sessions),
            when.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
