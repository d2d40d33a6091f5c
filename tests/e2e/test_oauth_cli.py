"""`dendrite-lite oidc ...` (typer's CliRunner, in process) beside a real server and a real
OpenID provider: provider add/list/test/remove, link, clients and revoking one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from click.testing import Result
from dendrite_lite.cli.main import app
from typer.testing import CliRunner

from tests.e2e.harness import Server, free_port
from tests.e2e.matrix import CS, bearer, expect, register_user
from tests.e2e.oauth_browser import (
    Browser,
    authorize_url,
    callback_params,
    exchange,
    pkce_pair,
    register_client,
)
from tests.e2e.oidc_upstream import CLIENT_ID, CLIENT_SECRET, oidc_provider, provider_sign_in


def cli(*args: str | Path) -> Result:
    # Wide enough that rich's tables do not wrap names.
    return CliRunner().invoke(app, ["oidc", *[str(arg) for arg in args]], env={"COLUMNS": "240"})


def ok(*args: str | Path) -> str:
    result = cli(*args)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def test_provider_add_list_test_link_and_remove(server_factory: object) -> None:
    port = free_port()
    server: Server = server_factory(shared=False, start=False)  # type: ignore[operator]
    data = ("--data-dir", server.data_dir)
    issuer = f"http://127.0.0.1:{port}"
    config_before = (server.data_dir / "config.toml").read_text()
    refused = cli("provider", "add", "idp", "--issuer", issuer, "--client-id", CLIENT_ID, *data)
    assert refused.exit_code == 2 and "https" in refused.stderr
    assert (server.data_dir / "config.toml").read_text() == config_before
    ok(
        "provider",
        "add",
        "idp",
        "--issuer",
        issuer,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--name",
        "My IdP",
        "--allow-insecure",
        "--scope",
        "openid",
        "--scope",
        "profile",
        *data,
    )
    assert (
        cli("provider", "add", "idp", "--issuer", issuer, "--client-id", "x", *data).exit_code == 1
    )
    listed = json.loads(ok("provider", "list", "--json", *data))
    assert listed[0]["id"] == "idp" and listed[0]["name"] == "My IdP"
    assert "client_secret" not in listed[0]
    assert "My IdP" in ok("provider", "list", *data)
    unreachable = cli("provider", "test", "idp", *data)
    assert unreachable.exit_code == 1 and "unreachable" in unreachable.stderr
    accounts = {"sub-cli": {"preferred_username": "cli-idp-name"}}
    with oidc_provider(port, [server.url + "/oauth2/upstream/callback"], accounts):
        out = ok("provider", "test", "idp", *data)
        assert "OK" in out and "signing keys" in out and "/oauth2/upstream/callback" in out
        server.start()
        with server.client() as http:
            local = register_user(http, prefix="migrated")
        assert (
            cli("link", local.localpart, "--provider", "nope", "--subject", "s", *data).exit_code
            == 1
        )
        assert (
            cli("link", "nobody-here", "--provider", "idp", "--subject", "s", *data).exit_code == 1
        )
        ok("link", local.localpart, "--provider", "idp", "--subject", "sub-cli", *data)
        # The provider's subject now signs in as the linked (migrated) password user.
        with httpx.Client(base_url=server.url, follow_redirects=True, timeout=30) as browser:
            page = provider_sign_in(browser, browser.get("/oauth2/upstream/idp"), "sub-cli")
            assert page.url.path == "/account/" and local.user_id in page.text
    ok("provider", "remove", "idp", *data)
    assert json.loads(ok("provider", "list", "--json", *data)) == []
    assert cli("provider", "remove", "idp", *data).exit_code == 1
    assert 'id = "idp"' not in (server.data_dir / "config.toml").read_text()


def test_clients_list_and_revoke(server: Server, http: httpx.Client) -> None:
    user = register_user(http)
    client = register_client(http, client_name="CLI Listed App")
    verifier, challenge = pkce_pair()
    browser = Browser.open(server.url)
    try:
        location = browser.authorize(
            authorize_url(client["client_id"], challenge, device="CLIDEVICE1"), user.localpart
        )
    finally:
        browser.close()
    token = expect(
        exchange(http, client["client_id"], callback_params(location)["code"], verifier), 200
    )
    data = ("--data-dir", server.data_dir)
    listed = {c["client_id"]: c for c in json.loads(ok("clients", "--json", *data))}
    assert listed[client["client_id"]]["sessions"] == 1
    assert listed[client["client_id"]]["client_name"] == "CLI Listed App"
    assert "CLI Listed App" in ok("clients", *data)
    out = ok("clients", "--revoke", client["client_id"], *data)
    assert "1 session(s) ended" in out
    expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 401)
    assert cli("clients", "--revoke", client["client_id"], *data).exit_code == 1
