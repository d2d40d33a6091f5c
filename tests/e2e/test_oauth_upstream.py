"""Upstream OpenID Connect providers against a real provider (npm `oidc-provider`):
"Sign in with X" from the OAuth pages and from legacy SSO, account creation on first
sign-in, the claims allow-list, linking an existing account with its password, state
and nonce checks."""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import httpx
import pytest

from tests.e2e.harness import Server, free_port
from tests.e2e.matrix import CS, PASSWORD, bearer, expect, register
from tests.e2e.oauth_browser import (
    authorize_url,
    callback_params,
    exchange,
    hidden_fields,
    pkce_pair,
    register_client,
)
from tests.e2e.oidc_upstream import (
    ACCOUNTS,
    LINK_LOCALPART,
    MAIL_ADDRESS,
    configure_upstream,
    oidc_provider,
    provider_sign_in,
)


@pytest.fixture(scope="module")
def upstream(server_factory: object) -> Iterator[tuple[Server, str]]:
    port = free_port()
    server: Server = server_factory(shared=False, start=False)  # type: ignore[operator]
    configure_upstream(
        server,
        f"http://127.0.0.1:{port}",
        allowed_claims={"groups": ["family", "friends"]},
        on_existing="password",
        link_by_email=True,
    )
    # ACCOUNTS is passed whole at start; tests that add accounts restart nothing, so
    # they add them before this fixture runs (see test_existing_account...).
    with oidc_provider(port, [server.url + "/oauth2/upstream/callback"], ACCOUNTS) as issuer:
        server.start()
        yield server, issuer


def _browser(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, follow_redirects=True, timeout=30)


def test_login_page_offers_the_provider_and_sso_lists_it(upstream: tuple[Server, str]) -> None:
    server, _ = upstream
    with server.client() as http:
        flows = expect(http.get(f"{CS}/login"), 200)["flows"]
        sso = next(flow for flow in flows if flow["type"] == "m.login.sso")
        assert sso["identity_providers"] == [{"id": "testidp", "name": "Test IdP"}]
        client = register_client(http)
        _, challenge = pkce_pair()
        with _browser(server) as browser:
            page = browser.get(authorize_url(client["client_id"], challenge))
            assert "Sign in with Test IdP" in page.text


def test_first_sign_in_creates_the_account_and_then_reuses_it(upstream: tuple[Server, str]) -> None:
    server, _ = upstream
    with server.client() as http, _browser(server) as browser:
        client = register_client(http)
        verifier, challenge = pkce_pair()
        login_page = browser.get(authorize_url(client["client_id"], challenge, device="UPSTREAM01"))
        pending = hidden_fields(login_page.text)["pending"]
        at_provider = browser.get(f"/oauth2/upstream/testidp?pending={pending}")
        assert at_provider.url.port != server.port
        consent = provider_sign_in(browser, at_provider, "sub-alice")
        assert consent.url.path == "/oauth2/consent", consent.text
        assert "@idpalice:localhost" in consent.text
        allowed = browser.post(
            "/oauth2/consent",
            data={**hidden_fields(consent.text), "action": "allow"},
            follow_redirects=False,
        )
        code = callback_params(allowed.headers["location"])["code"]
        token = expect(exchange(http, client["client_id"], code, verifier), 200)
        who = expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 200)
        assert who["user_id"] == "@idpalice:localhost"
        profile = expect(http.get(f"{CS}/profile/@idpalice:localhost"), 200)
        assert profile["displayname"] == "Alice From The IdP"
        # The provider verified the address: it is bound to the new account.
        threepids = expect(
            http.get(f"{CS}/account/3pid", headers=bearer(token["access_token"])), 200
        )["threepids"]
        assert [(t["medium"], t["address"]) for t in threepids] == [("email", "alice@idp.example")]
    # A second sign-in (new browser) finds the link rather than creating another account.
    with server.client() as http, _browser(server) as browser:
        client = register_client(http)
        verifier, challenge = pkce_pair()
        login_page = browser.get(authorize_url(client["client_id"], challenge, device="UPSTREAM02"))
        pending = hidden_fields(login_page.text)["pending"]
        consent = provider_sign_in(
            browser, browser.get(f"/oauth2/upstream/testidp?pending={pending}"), "sub-alice"
        )
        assert "@idpalice:localhost" in consent.text


def test_claims_outside_the_allow_list_are_refused(upstream: tuple[Server, str]) -> None:
    server, _ = upstream
    with _browser(server) as browser:
        page = provider_sign_in(browser, browser.get("/oauth2/upstream/testidp"), "sub-outsider")
        assert page.status_code == 400
        assert "may not sign in here" in page.text
    with server.client() as http:
        expect(http.get(f"{CS}/profile/@outsider:localhost"), 404)


def test_existing_account_is_linked_after_its_password(upstream: tuple[Server, str]) -> None:
    server, _ = upstream
    with server.client() as http:
        registered = register(http, LINK_LOCALPART)
    local_user_id = registered["user_id"]
    with _browser(server) as browser:
        page = provider_sign_in(browser, browser.get("/oauth2/upstream/testidp"), "sub-linkme")
        assert page.url.path == "/oauth2/upstream/callback"
        assert "exists already" in page.text
        fields = hidden_fields(page.text)
        wrong = browser.post(
            "/oauth2/login", data={**fields, "username": LINK_LOCALPART, "password": "nope"}
        )
        assert wrong.status_code == 403
        done = browser.post(
            "/oauth2/login", data={**fields, "username": LINK_LOCALPART, "password": PASSWORD}
        )
        assert done.url.path == "/account/"
    # Now the provider alone signs the user in.
    with _browser(server) as browser:
        page = provider_sign_in(browser, browser.get("/oauth2/upstream/testidp"), "sub-linkme")
        assert page.url.path == "/account/", page.text
        assert local_user_id in page.text


def test_state_is_single_use_and_must_be_ours(upstream: tuple[Server, str]) -> None:
    server, _ = upstream
    with _browser(server) as browser:
        forged = browser.get("/oauth2/upstream/callback?state=forged&code=x")
        assert forged.status_code == 400 and "unknown or expired state" in forged.text
        at_provider = browser.get("/oauth2/upstream/testidp")
        assert at_provider.url.port != server.port
        state = at_provider.history[0].headers["location"]
        assert "state=" in state
        error = browser.get(
            "/oauth2/upstream/callback?"
            + httpx.QueryParams(
                {"state": httpx.URL(state).params["state"], "error": "access_denied"}
            ).__str__()
        )
        assert error.status_code == 400 and "access_denied" in error.text
        # The state was used up by the error answer.
        again = browser.get(
            "/oauth2/upstream/callback?"
            + str(httpx.QueryParams({"state": httpx.URL(state).params["state"], "code": "x"}))
        )
        assert "unknown or expired state" in again.text
        missing = browser.get("/oauth2/upstream/nosuch")
        assert missing.status_code == 404


def test_legacy_sso_with_an_identity_provider(upstream: tuple[Server, str]) -> None:
    server, _ = upstream
    redirect = "https://client.example.org/sso-done"
    with _browser(server) as browser, server.client() as http:
        at_provider = browser.get(
            f"{CS}/login/sso/redirect/testidp", params={"redirectUrl": redirect}
        )
        assert at_provider.url.port != server.port
        confirm = provider_sign_in(browser, at_provider, "sub-alice")
        assert confirm.url.path == "/oauth2/consent" and "client.example.org" in confirm.text
        done = browser.post(
            "/oauth2/consent",
            data={**hidden_fields(confirm.text), "action": "allow"},
            follow_redirects=False,
        )
        token = callback_params(done.headers["location"])["loginToken"]
        logged_in = expect(
            http.post(f"{CS}/login", json={"type": "m.login.token", "token": token}), 200
        )
        assert logged_in["user_id"] == "@idpalice:localhost"


def test_unverified_email_is_not_bound(upstream: tuple[Server, str]) -> None:
    server, _ = upstream
    with _browser(server) as browser:
        page = provider_sign_in(browser, browser.get("/oauth2/upstream/testidp"), "sub-unverified")
        assert page.url.path == "/account/" and "@unverified:localhost" in page.text
    db = apsw.Connection(str(server.data_dir / "homeserver.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        bound = db.execute(
            "SELECT count(*) FROM user_threepids WHERE address = 'u@idp.example'"
        ).fetchone()
    finally:
        db.close()
    assert bound == (0,)


def test_verified_email_links_the_account_that_bound_it(upstream: tuple[Server, str]) -> None:
    server, _ = upstream
    localpart = MAIL_ADDRESS.split("@")[0]
    server.cli("user", "add", localpart, "--password", PASSWORD, "--email", MAIL_ADDRESS)
    with _browser(server) as browser:
        page = provider_sign_in(browser, browser.get("/oauth2/upstream/testidp"), "sub-mail")
        assert page.url.path == "/account/", page.text
        assert f"@{localpart}:localhost" in page.text
    with server.client() as http:
        expect(http.get(f"{CS}/profile/@someone-else:localhost"), 404)
