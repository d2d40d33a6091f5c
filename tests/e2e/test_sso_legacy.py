"""Legacy SSO for clients that do not speak OAuth 2.0: /login/sso/redirect through the
server's pages to redirectUrl?loginToken=..., exchanged once with m.login.token."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, bearer, expect, register_user
from tests.e2e.oauth_browser import Browser, callback_params

REDIRECT = "https://client.example.org/after-sso?keep=1"


@pytest.fixture
def browser(server: Server) -> Iterator[Browser]:
    opened = Browser.open(server.url)
    yield opened
    opened.close()


def sso_login_token(browser: Browser, user: User) -> str:
    response = browser.http.get(f"{CS}/login/sso/redirect", params={"redirectUrl": REDIRECT})
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    if location.startswith("/oauth2/login"):
        location = browser.sign_in(browser.get(location), user.localpart).headers["location"]
    confirm = browser.get(location)
    assert "client.example.org" in confirm.text
    done = browser.submit(confirm, "/oauth2/consent", action="allow")
    assert done.status_code == 302
    assert done.headers["location"].startswith(REDIRECT + "&loginToken=")
    return callback_params(done.headers["location"])["loginToken"]


def test_sso_redirect_then_login_token(http: httpx.Client, browser: Browser, user: User) -> None:
    token = sso_login_token(browser, user)
    logged_in = expect(
        http.post(
            f"{CS}/login", json={"type": "m.login.token", "token": token, "device_id": "SSODEVICE1"}
        ),
        200,
    )
    assert logged_in["user_id"] == user.user_id and logged_in["device_id"] == "SSODEVICE1"
    expect(http.get(f"{CS}/account/whoami", headers=bearer(logged_in["access_token"])), 200)
    # Single use.
    again = http.post(f"{CS}/login", json={"type": "m.login.token", "token": token})
    expect(again, 403, "M_FORBIDDEN")
    # A browser already signed in goes straight to the confirmation.
    second = sso_login_token(browser, user)
    assert second != token


def test_login_token_bad_input(http: httpx.Client) -> None:
    expect(http.post(f"{CS}/login", json={"type": "m.login.token"}), 400, "M_MISSING_PARAM")
    expect(http.post(f"{CS}/login", json={"type": "m.login.token", "token": 5}), 400, "M_BAD_JSON")
    expect(
        http.post(f"{CS}/login", json={"type": "m.login.token", "token": "made-up"}),
        403,
        "M_FORBIDDEN",
    )


def test_sso_redirect_bad_input(http: httpx.Client) -> None:
    expect(http.get(f"{CS}/login/sso/redirect"), 400, "M_MISSING_PARAM")
    expect(
        http.get(f"{CS}/login/sso/redirect", params={"redirectUrl": "no-scheme"}),
        400,
        "M_INVALID_PARAM",
    )
    expect(
        http.get(f"{CS}/login/sso/redirect", params={"redirectUrl": "javascript:alert(1)"}),
        400,
        "M_INVALID_PARAM",
    )
    expect(
        http.get(f"{CS}/login/sso/redirect/nosuchidp", params={"redirectUrl": REDIRECT}),
        404,
        "M_NOT_FOUND",
    )


def test_expired_login_tokens_are_refused(server_factory: object) -> None:
    server: Server = server_factory({"oauth": {"login_token_lifetime_ms": 1}})  # type: ignore[operator]
    with server.client() as http:
        user = register_user(http)
        browser = Browser.open(server.url)
        try:
            token = sso_login_token(browser, user)
        finally:
            browser.close()
        time.sleep(0.01)
        expect(
            http.post(f"{CS}/login", json={"type": "m.login.token", "token": token}),
            403,
            "M_FORBIDDEN",
        )


def test_password_login_can_be_turned_off_and_oauth_off_entirely(server_factory: object) -> None:
    no_password: Server = server_factory({"oauth": {"password_login": False}})  # type: ignore[operator]
    with no_password.client() as http:
        flows = expect(http.get(f"{CS}/login"), 200)["flows"]
        assert [flow["type"] for flow in flows] == ["m.login.sso", "m.login.token"]
        refused = http.post(
            f"{CS}/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "a"},
                "password": "b",
            },
        )
        expect(refused, 400, "M_UNKNOWN")
    off: Server = server_factory({"oauth": {"enabled": False}})  # type: ignore[operator]
    with off.client() as http:
        assert expect(http.get(f"{CS}/login"), 200) == {"flows": [{"type": "m.login.password"}]}
        expect(http.get("/_matrix/client/v1/auth_metadata"), 404, "M_UNRECOGNIZED")
        expect(
            http.get(f"{CS}/login/sso/redirect", params={"redirectUrl": REDIRECT}),
            404,
            "M_UNRECOGNIZED",
        )
        expect(
            http.post(f"{CS}/login", json={"type": "m.login.token", "token": "x"}), 400, "M_UNKNOWN"
        )
