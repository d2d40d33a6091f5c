"""The real OpenID provider (npm `oidc-provider`, tests/oidc_provider/) on a loopback
port, and a dendrite-lite configured to use it as an upstream provider."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import Server
from tests.e2e.matrix import unique

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"
CLIENT_ID = "dendrite-lite"
CLIENT_SECRET = "a-long-test-secret-for-the-upstream-client"
LINK_LOCALPART = unique("linkme")
MAIL_ADDRESS = f"{unique('mailed')}@example.org"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "sub-alice": {
        "preferred_username": "idpalice",
        "name": "Alice From The IdP",
        "email": "Alice@IdP.example",
        "email_verified": True,
        "groups": ["family"],
    },
    "sub-outsider": {"preferred_username": "outsider", "groups": ["strangers"]},
    # Unverified: the address is not bound.
    "sub-unverified": {
        "preferred_username": "unverified",
        "email": "u@idp.example",
        "groups": ["family"],
    },
    # Its verified address is bound to an existing account (made by the test), whose name
    # differs: link_by_email signs it in as that account.
    "sub-mail": {
        "preferred_username": "someone-else",
        "email": MAIL_ADDRESS,
        "email_verified": True,
        "groups": ["family"],
    },
    # Names an account that already exists locally (made by the test before signing in).
    "sub-linkme": {"preferred_username": LINK_LOCALPART, "groups": ["friends"]},
}
_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.I)
_INPUT = re.compile(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', re.I)


@contextmanager
def oidc_provider(port: int, redirect_uris: list[str], accounts: dict[str, Any]) -> Iterator[str]:
    node = shutil.which("node")
    assert node, "node (20.14 or newer) is not on PATH; the OIDC provider tests need it"
    assert (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir(), (
        f"{PROVIDER_DIR}/node_modules is missing: run `make test` or `npm ci` in {PROVIDER_DIR}"
    )
    config = {
        "port": port,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }
        ],
        "accounts": accounts,
    }
    proc = subprocess.Popen(
        [node, str(PROVIDER_DIR / "provider.mjs"), json.dumps(config)],
        cwd=PROVIDER_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(issuer + "/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "oidc-provider did not start"
            time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def upstream_toml(issuer: str, **extra: Any) -> str:
    values: dict[str, Any] = {
        "id": "testidp",
        "name": "Test IdP",
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "allow_insecure": True,
        "scopes": ["openid", "profile", "email", "groups"],
        **extra,
    }
    lines = ["", "[[oauth.upstream]]"]
    for key, value in values.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def configure_upstream(server: Server, issuer: str, **extra: Any) -> None:
    with (server.data_dir / "config.toml").open("a") as config:
        config.write(upstream_toml(issuer, **extra))


def provider_sign_in(browser: httpx.Client, page: httpx.Response, account: str) -> httpx.Response:
    """Fill oidc-provider's dev login form, then its consent form (following redirects);
    the page where the browser lands back at dendrite-lite."""
    for _ in range(4):
        if page.url.port == browser.base_url.port:
            break
        assert page.status_code == 200, page.text
        action = _FORM.search(page.text)
        assert action is not None, page.text
        fields = dict(_INPUT.findall(page.text))
        if fields.get("prompt") == "login":
            fields.update(login=account, password="any")
        page = browser.post(str(page.url.join(action.group(1))), data=fields)
    return page
