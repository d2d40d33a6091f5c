"""The OAuth pages in a real browser: Debian's chromium driven by Playwright (never
Playwright's own browser download). Sign in, consent, "Sign in with" an upstream
provider (a real oidc-provider), and signing a device out on the account page; a
screenshot of every page lands in the test's tmp dir."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Server, free_port
from tests.e2e.matrix import CS, PASSWORD, User, bearer, expect
from tests.e2e.oauth_browser import (
    REDIRECT_URI,
    authorize_url,
    callback_params,
    exchange,
    pkce_pair,
    register_client,
)
from tests.e2e.oidc_upstream import configure_upstream, oidc_provider

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Tab:
    """The browser tab, the URLs it arrived at on the client's side, the screenshot dir."""

    page: Any
    callbacks: list[str]
    shots: Path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Tab]:
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium") == CHROMIUM, (
        "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context()
        opened = context.new_page()
        callbacks: list[str] = []

        # The client's redirect URI is not a real site: the browser's arrival there is
        # caught and recorded, as the client app would.
        def arrive(route: Any) -> None:
            callbacks.append(route.request.url)
            route.fulfill(status=200, content_type="text/plain", body="back at the client")

        opened.route("https://app.example.org/**", arrive)
        yield Tab(opened, callbacks, tmp_path)
        context.close()
        browser.close()


def shot(page: Any, name: str) -> None:
    path = page.shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000


def _authorize(page: Any, server: Server, http: httpx.Client, device: str) -> tuple[str, str]:
    client = register_client(http, logo_uri="https://app.example.org/logo.png")
    verifier, challenge = pkce_pair()
    page.goto(server.url + authorize_url(client["client_id"], challenge, device=device))
    return client["client_id"], verifier


def test_sign_in_consent_and_account_sign_out(
    page: Any, server: Server, http: httpx.Client, user: User
) -> None:
    client_id, verifier = _authorize(page, server, http, "BROWSER001")
    assert page.title().startswith("Sign in")
    shot(page, "01-login")
    page.get_by_label("Username").fill(user.localpart)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/oauth2/consent**")
    assert "Test App" in page.content()
    shot(page, "02-consent")
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(REDIRECT_URI + "**")
    assert page.callbacks, "the browser never reached the client"
    code = callback_params(page.callbacks[-1])["code"]
    token = expect(exchange(http, client_id, code, verifier), 200)
    expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 200)

    page.goto(server.url + "/account/")
    assert "BROWSER001" in page.content()
    shot(page, "03-account")
    page.get_by_role("button", name="Sign out BROWSER001").click()
    page.wait_for_load_state()
    assert "BROWSER001 was signed out" in page.content()
    shot(page, "04-signed-out")
    expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 401)


def test_wrong_password_is_shown_accessibly(
    page: Any, server: Server, http: httpx.Client, user: User
) -> None:
    _authorize(page, server, http, "BROWSER002")
    page.get_by_label("Username").fill(user.localpart)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    assert "Wrong username or password" in alert.inner_text()
    shot(page, "05-login-error")


@pytest.fixture(scope="module")
def upstream_server(server_factory: Any) -> Iterator[Server]:
    port = free_port()
    server: Server = server_factory(shared=False, start=False)
    configure_upstream(server, f"http://127.0.0.1:{port}")
    accounts = {"sub-browser": {"preferred_username": "browserperson", "name": "Browser Person"}}
    with oidc_provider(port, [server.url + "/oauth2/upstream/callback"], accounts):
        server.start()
        yield server


def test_sign_in_with_the_upstream_provider(page: Any, upstream_server: Server) -> None:
    with upstream_server.client() as http:
        client_id, verifier = _authorize(page, upstream_server, http, "BROWSER003")
        page.get_by_role("link", name="Sign in with Test IdP").click()
        page.wait_for_selector("input[name=login]")
        shot(page, "06-provider-login")
        page.fill("input[name=login]", "sub-browser")
        page.fill("input[name=password]", "anything")
        page.click("button[type=submit]")
        # oidc-provider's own consent step.
        page.wait_for_load_state()
        if "/interaction/" in page.url:
            shot(page, "07-provider-consent")
            page.click("button[type=submit]")
        page.wait_for_url("**/oauth2/consent**")
        assert "@browserperson:localhost" in page.content()
        shot(page, "08-consent-after-upstream")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(REDIRECT_URI + "**")
        code = callback_params(page.callbacks[-1])["code"]
        token = expect(exchange(http, client_id, code, verifier), 200)
        who = expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 200)
        assert who["user_id"] == "@browserperson:localhost"
