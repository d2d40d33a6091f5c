"""The m.oauth stage of /keys/device_signing/upload: an OAuth session cannot do UIA, so
replacing cross-signing keys sends the user to the account page to approve it; the
client then retries with the session (spec: OAuth authentication)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, bearer, expect
from tests.e2e.oauth_browser import (
    Browser,
    authorize_url,
    callback_params,
    exchange,
    pkce_pair,
    register_client,
)
from tests.e2e.test_keys_client import CrossSigningKeys

UPLOAD = f"{CS}/keys/device_signing/upload"


def test_oauth_session_resets_cross_signing_after_approval(
    server: Server, http: httpx.Client, user: User
) -> None:
    client = register_client(http)
    verifier, challenge = pkce_pair()
    browser = Browser.open(server.url)
    try:
        location = browser.authorize(
            authorize_url(client["client_id"], challenge, device="XSIGNDEV01"), user.localpart
        )
        token = expect(
            exchange(http, client["client_id"], callback_params(location)["code"], verifier), 200
        )
        headers = bearer(token["access_token"])
        # The first keys need no authentication at all.
        expect(http.post(UPLOAD, headers=headers, json=CrossSigningKeys().body(user.user_id)), 200)
        # Replacing them does: m.oauth, pointing at the account page.
        replacement = CrossSigningKeys().body(user.user_id)
        challenge_body = expect(http.post(UPLOAD, headers=headers, json=replacement), 401)
        assert challenge_body["flows"] == [{"stages": ["m.oauth"]}]
        url = challenge_body["params"]["m.oauth"]["url"]
        assert url == server.url + "/account/?action=org.matrix.cross_signing_reset"
        session = challenge_body["session"]
        # Retrying before approval is refused the same way.
        again = http.post(
            UPLOAD, headers=headers, json={**replacement, "auth": {"session": session}}
        )
        assert expect(again, 401)["flows"] == [{"stages": ["m.oauth"]}]
        # The user approves in the browser (already signed in from the authorization).
        page = browser.get(urlsplit(url).path + "?" + urlsplit(url).query)
        assert page.status_code == 200 and "Reset your identity" in page.text
        done = browser.submit(page, "/account/cross_signing_reset")
        assert done.status_code == 200 and "within 10 minutes" in done.text
        expect(
            http.post(UPLOAD, headers=headers, json={**replacement, "auth": {"session": session}}),
            200,
        )
        # One approval, one reset.
        third = CrossSigningKeys().body(user.user_id)
        expect(http.post(UPLOAD, headers=headers, json=third), 401)
    finally:
        browser.close()


def test_password_sessions_keep_uia(http: httpx.Client, user: User) -> None:
    expect(http.post(UPLOAD, headers=user.headers, json=CrossSigningKeys().body(user.user_id)), 200)
    challenge_body = expect(
        http.post(UPLOAD, headers=user.headers, json=CrossSigningKeys().body(user.user_id)), 401
    )
    assert challenge_body["flows"] == [{"stages": ["m.login.password"]}]


def test_account_page_remembers_the_action_through_sign_in(server: Server, user: User) -> None:
    browser = Browser.open(server.url)
    try:
        to_login = browser.get("/account/?action=org.matrix.cross_signing_reset")
        login_page = browser.get(to_login.headers["location"])
        back = browser.sign_in(login_page, user.localpart)
        assert back.headers["location"] == "/account/?action=org.matrix.cross_signing_reset"
        assert "Reset your identity" in browser.get(back.headers["location"]).text
    finally:
        browser.close()
