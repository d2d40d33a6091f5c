"""The server's own pages: creating an account with prompt=create, the account page
(sessions and their sign-out, password change, signing the browser out)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, PASSWORD, User, bearer, expect, login, unique
from tests.e2e.oauth_browser import (
    Browser,
    authorize_url,
    callback_params,
    exchange,
    pkce_pair,
    register_client,
)


@pytest.fixture
def browser(server: Server) -> Iterator[Browser]:
    opened = Browser.open(server.url)
    yield opened
    opened.close()


def test_prompt_create_registers_an_account(http: httpx.Client, browser: Browser) -> None:
    client = register_client(http)
    verifier, challenge = pkce_pair()
    response = browser.get(
        authorize_url(client["client_id"], challenge, device="NEWACCT001", prompt="create")
    )
    assert response.headers["location"].startswith("/oauth2/register?pending=")
    page = browser.get(response.headers["location"])
    assert page.status_code == 200 and "Create an account" in page.text
    localpart = unique("fresh")
    differ = browser.submit(
        page, "/oauth2/register", username=localpart, password=PASSWORD, password2="other"
    )
    assert differ.status_code == 400 and "differ" in differ.text
    weak = browser.submit(page, "/oauth2/register", username=localpart, password="x", password2="x")
    assert weak.status_code == 400 and "too short" in weak.text
    bad_name = browser.submit(
        page, "/oauth2/register", username="No Spaces", password=PASSWORD, password2=PASSWORD
    )
    assert bad_name.status_code == 400
    created = browser.submit(
        page, "/oauth2/register", username=localpart, password=PASSWORD, password2=PASSWORD
    )
    assert created.status_code == 302 and created.headers["location"].startswith("/oauth2/consent")
    consent = browser.get(created.headers["location"])
    allowed = browser.submit(consent, "/oauth2/consent", action="allow")
    code = callback_params(allowed.headers["location"])["code"]
    token = expect(exchange(http, client["client_id"], code, verifier), 200)
    who = expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 200)
    assert who["user_id"] == f"@{localpart}:localhost"
    # The same name cannot be taken twice; the password works for legacy login too.
    assert login(http, localpart)["user_id"] == who["user_id"]
    again = browser.submit(
        page, "/oauth2/register", username=localpart, password=PASSWORD, password2=PASSWORD
    )
    assert again.status_code in (400, 200)


def test_registration_page_is_closed_when_registration_is(server_factory: object) -> None:
    server: Server = server_factory(open_registration=False)  # type: ignore[operator]
    with server.client() as http:
        client = register_client(http)
        _, challenge = pkce_pair()
        browser = Browser.open(server.url)
        try:
            location = browser.get(
                authorize_url(client["client_id"], challenge, prompt="create")
            ).headers["location"]
            page = browser.get(location)
            assert "does not allow new accounts" in page.text
            assert "/oauth2/register" not in page.text.split("</form>")[-1]
            refused = browser.http.post(
                "/oauth2/register",
                data={
                    **{"csrf": browser.http.cookies["dl_csrf"]},
                    "pending": location.split("=")[1],
                    "username": "x",
                    "password": PASSWORD,
                    "password2": PASSWORD,
                },
            )
            assert refused.status_code == 403
        finally:
            browser.close()


def test_account_page_lists_and_signs_out_sessions(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    assert browser.get("/account/").headers["location"].startswith("/oauth2/login?pending=")
    login_page = browser.get("/oauth2/login")
    signed_in = browser.sign_in(login_page, user.localpart)
    assert signed_in.headers["location"] == "/account/"
    other = login(http, user.localpart, device_id="SECONDDEV")
    page = browser.get("/account/?action=org.matrix.devices_list")
    assert page.status_code == 200
    assert user.device_id in page.text and "SECONDDEV" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    done = browser.submit(page, "/account/devices/delete", device_id="SECONDDEV")
    assert done.status_code == 200 and "SECONDDEV was signed out" in done.text
    expect(http.get(f"{CS}/account/whoami", headers=bearer(other["access_token"])), 401)
    missing = browser.submit(page, "/account/devices/delete", device_id="NOSUCHDEV")
    assert missing.status_code == 404
    # Another user's device cannot be named.
    assert user.device_id in browser.get("/account/").text


def test_account_page_changes_the_password_and_signs_the_browser_out(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    browser.sign_in(browser.get("/oauth2/login"), user.localpart)
    page = browser.get("/account/")
    wrong = browser.submit(page, "/account/password", current="nope", new="a new password")
    assert wrong.status_code == 403 and "current password is wrong" in wrong.text
    weak = browser.submit(page, "/account/password", current=PASSWORD, new="x")
    assert weak.status_code == 400
    changed = browser.submit(page, "/account/password", current=PASSWORD, new="a new password")
    assert changed.status_code == 200 and "was changed" in changed.text
    login(http, user.localpart, "a new password")
    login(http, user.localpart, PASSWORD, status=403, errcode="M_FORBIDDEN")
    out = browser.submit(page, "/account/logout")
    assert out.status_code == 200 and "signed out" in out.text
    assert browser.get("/account/").status_code == 302


def test_expired_or_unknown_pending_requests(browser: Browser) -> None:
    for path in (
        "/oauth2/login?pending=nope",
        "/oauth2/consent?pending=nope",
        "/oauth2/register?pending=nope",
    ):
        response = browser.get(path)
        assert response.status_code == 400 and "expired" in response.text, path


def test_login_hint_prefills_the_username(http: httpx.Client, browser: Browser, user: User) -> None:
    client = register_client(http)
    _, challenge = pkce_pair()
    url = authorize_url(client["client_id"], challenge, login_hint=f"mxid:{user.user_id}")
    page = browser.get(browser.get(url).headers["location"])
    assert f'value="{user.user_id}"' in page.text
    # A full user ID signs in like a localpart.
    assert browser.sign_in(page, user.user_id).status_code == 302


def test_signed_in_browsers_skip_the_login_unless_asked(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    client = register_client(http)
    _, challenge = pkce_pair()
    browser.authorize(
        authorize_url(client["client_id"], challenge, device="AGAIN00001"), user.localpart
    )
    again = browser.get(authorize_url(client["client_id"], challenge, device="AGAIN00002"))
    assert again.headers["location"].startswith("/oauth2/consent")
    consent = browser.get(again.headers["location"])
    assert "Use another account" in consent.text and user.user_id in consent.text
    forced = browser.get(
        authorize_url(client["client_id"], challenge, device="AGAIN00003", prompt="login")
    )
    assert forced.headers["location"].startswith("/oauth2/login")


def test_cookies_are_secure_behind_a_tls_proxy(server_factory: object) -> None:
    server: Server = server_factory({"": {"public_baseurl": "https://matrix.example.org"}})  # type: ignore[operator]
    with server.client() as http:
        metadata = expect(http.get("/_matrix/client/v1/auth_metadata"), 200)
        assert metadata["issuer"] == "https://matrix.example.org/"
        assert metadata["token_endpoint"] == "https://matrix.example.org/oauth2/token"
        page = http.get("/oauth2/login")
        cookie = page.headers["set-cookie"]
        assert "dl_csrf=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
