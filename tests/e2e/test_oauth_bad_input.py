"""Everything the OAuth 2.0 API must refuse, with the RFCs' error codes: client
registration rules (MSC2966), open redirects, PKCE, codes reused, expired or stolen by
another client, unknown scopes, CSRF on the pages, deactivated users."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, bearer, expect, register_user
from tests.e2e.oauth_browser import (
    CLIENT_URI,
    REDIRECT_URI,
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


def oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


# -- registration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"client_uri": None}, "invalid_client_metadata"),
        ({"client_uri": "http://app.example.org/"}, "invalid_client_metadata"),
        ({"client_uri": "https://user:pw@app.example.org/"}, "invalid_client_metadata"),
        ({"client_uri": "https://10.0.0.1/"}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://app.example.org/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://evil.example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example.org/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": "https://app.example.org/cb"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
        ({"application_type": "desktop"}, "invalid_client_metadata"),
        ({"logo_uri": "https://elsewhere.example.com/logo.png"}, "invalid_client_metadata"),
        (
            {"application_type": "native", "redirect_uris": ["http://localhost:1234/cb"]},
            "invalid_redirect_uri",
        ),
        (
            {"application_type": "native", "redirect_uris": ["example:/callback"]},
            "invalid_redirect_uri",
        ),
        (
            {"application_type": "native", "redirect_uris": ["org.example.app://callback"]},
            "invalid_redirect_uri",
        ),
        (
            {"application_type": "native", "redirect_uris": ["https://localhost/callback"]},
            "invalid_redirect_uri",
        ),
    ],
)
def test_registration_refuses_bad_metadata(
    http: httpx.Client, extra: dict[str, object], error: str
) -> None:
    body: dict[str, object] = {
        "client_name": "Bad",
        "client_uri": CLIENT_URI,
        "redirect_uris": [REDIRECT_URI],
        **extra,
    }
    body = {key: value for key, value in body.items() if value is not None}
    oauth_error(http.post("/oauth2/registration", json=body), 400, error)


def test_registration_refuses_non_objects(http: httpx.Client) -> None:
    oauth_error(http.post("/oauth2/registration", json=["x"]), 400, "invalid_client_metadata")
    response = http.post(
        "/oauth2/registration", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_registration_accepts_native_clients_and_drops_unknown_grants(http: httpx.Client) -> None:
    answer = register_client(
        http,
        application_type="native",
        redirect_uris=["org.example.app:/callback", "http://127.0.0.1/callback"],
        grant_types=[
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        **{"client_name#fr": "Appli", "tos_uri#fr": "https://evil.example.com/tos"},
    )
    assert answer["grant_types"] == ["authorization_code", "refresh_token"]
    assert answer["client_name#fr"] == "Appli"
    assert "tos_uri#fr" not in answer
    assert answer["token_endpoint_auth_method"] == "none"


# -- authorization endpoint -----------------------------------------------------------------


def test_unknown_client_and_unregistered_redirect_are_never_redirected(
    http: httpx.Client, browser: Browser
) -> None:
    client = register_client(http)
    _, challenge = pkce_pair()
    unknown = browser.get(authorize_url("nope", challenge))
    assert unknown.status_code == 400 and "location" not in unknown.headers
    assert "not registered" in unknown.text
    evil = authorize_url(client["client_id"], challenge).replace(
        "app.example.org%2Fcallback", "evil.example.com%2Fcallback"
    )
    response = browser.get(evil)
    assert response.status_code == 400 and "location" not in response.headers
    # Query parameters added to a registered URI make it another URI.
    response = browser.get(authorize_url(client["client_id"], challenge) + "&redirect_uri=x")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "urn:matrix:client:api:*"}, "invalid_scope"),
        ({"scope": "urn:matrix:client:device:ABCDEFGHIJ"}, "invalid_scope"),
        (
            {"scope": "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ admin"},
            "invalid_scope",
        ),
        (
            {
                "scope": "urn:matrix:client:api:* urn:matrix:client:device:AAAAAAA"
                " urn:matrix:client:device:BBBBBBB"
            },
            "invalid_scope",
        ),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_mode": "form_post"}, "invalid_request"),
        ({"prompt": "none"}, "interaction_required"),
    ],
)
def test_bad_authorization_requests_are_redirected_with_an_error(
    http: httpx.Client, browser: Browser, extra: dict[str, str], error: str
) -> None:
    client = register_client(http)
    _, challenge = pkce_pair()
    response = browser.get(authorize_url(client["client_id"], challenge, **extra))
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI)
    params = callback_params(location)
    assert params["error"] == error
    assert params["state"] == "st4te"


def test_unstable_scope_names_are_accepted(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    client = register_client(http)
    verifier, challenge = pkce_pair()
    scope = (
        "urn:matrix:org.matrix.msc2967.client:api:*"
        " urn:matrix:org.matrix.msc2967.client:device:UNSTABLE01"
    )
    location = browser.authorize(
        authorize_url(client["client_id"], challenge, scope=scope), user.localpart
    )
    code = callback_params(location)["code"]
    token = expect(exchange(http, client["client_id"], code, verifier), 200)
    assert token["scope"] == scope
    who = expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 200)
    assert who["device_id"] == "UNSTABLE01"


def test_denying_consent_redirects_access_denied(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    client = register_client(http)
    _, challenge = pkce_pair()
    login = browser.get(
        browser.get(authorize_url(client["client_id"], challenge)).headers["location"]
    )
    consent_at = browser.sign_in(login, user.localpart).headers["location"]
    consent = browser.get(consent_at)
    assert "Test App" in consent.text and "app.example.org" in consent.text
    response = browser.submit(consent, "/oauth2/consent", action="deny")
    params = callback_params(response.headers["location"])
    assert params == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": "st4te",
    }


# -- token endpoint ---------------------------------------------------------------------------


def _code(http: httpx.Client, browser: Browser, user: User, device: str) -> tuple[str, str, str]:
    client = register_client(http)
    verifier, challenge = pkce_pair()
    location = browser.authorize(
        authorize_url(client["client_id"], challenge, device=device), user.localpart
    )
    return client["client_id"], callback_params(location)["code"], verifier


def test_code_reuse_is_refused_and_revokes_its_tokens(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    client_id, code, verifier = _code(http, browser, user, "REUSEDEV01")
    token = expect(exchange(http, client_id, code, verifier), 200)
    oauth_error(exchange(http, client_id, code, verifier), 400, "invalid_grant")
    expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 401)


def test_code_for_another_client_wrong_verifier_or_redirect_is_refused(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    other = register_client(http)
    client_id, code, verifier = _code(http, browser, user, "STOLENDEV1")
    oauth_error(exchange(http, other["client_id"], code, verifier), 400, "invalid_grant")
    client_id, code, verifier = _code(http, browser, user, "STOLENDEV2")
    wrong, _ = pkce_pair()
    oauth_error(exchange(http, client_id, code, wrong), 400, "invalid_grant")
    client_id, code, verifier = _code(http, browser, user, "STOLENDEV3")
    oauth_error(
        exchange(http, client_id, code, verifier, redirect_uri=REDIRECT_URI + "2"),
        400,
        "invalid_grant",
    )
    oauth_error(exchange(http, client_id, "made-up", verifier), 400, "invalid_grant")


def test_malformed_token_requests(http: httpx.Client) -> None:
    verifier, _ = pkce_pair()
    oauth_error(
        exchange(http, "c", "code", verifier, grant_type="password"), 400, "unsupported_grant_type"
    )
    oauth_error(exchange(http, "c", "code", verifier, grant_type=""), 400, "invalid_request")
    oauth_error(exchange(http, "c", "", verifier), 400, "invalid_request")
    oauth_error(exchange(http, "c", "code", "short"), 400, "invalid_request")
    response = http.post("/oauth2/token", json={"grant_type": "authorization_code"})
    oauth_error(response, 400, "invalid_request")
    repeated = http.post(
        "/oauth2/token",
        content=b"grant_type=refresh_token&grant_type=refresh_token",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    oauth_error(repeated, 400, "invalid_request")
    bad_utf8 = http.post(
        "/oauth2/token",
        content=b"grant_type=\xff",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    oauth_error(bad_utf8, 400, "invalid_request")
    oauth_error(
        http.post("/oauth2/token", data={"grant_type": "refresh_token", "client_id": "c"}),
        400,
        "invalid_request",
    )
    oauth_error(
        http.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "x"}),
        400,
        "invalid_request",
    )
    oauth_error(
        http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "c"},
        ),
        400,
        "invalid_grant",
    )


def test_expired_codes_are_refused(server_factory: object, tmp_path: object) -> None:
    server: Server = server_factory({"oauth": {"code_lifetime_ms": 1}})  # type: ignore[operator]
    with server.client() as http:
        user = register_user(http)
        browser = Browser.open(server.url)
        try:
            client_id, code, verifier = _code(http, browser, user, "EXPIRED001")
        finally:
            browser.close()
        time.sleep(0.01)
        oauth_error(exchange(http, client_id, code, verifier), 400, "invalid_grant")


# -- pages: CSRF, deactivated users --------------------------------------------------------------


def test_forms_without_the_csrf_token_are_refused(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    client = register_client(http)
    _, challenge = pkce_pair()
    login = browser.get(
        browser.get(authorize_url(client["client_id"], challenge)).headers["location"]
    )
    form = {"username": user.localpart, "password": user.password}
    response = browser.http.post("/oauth2/login", data={**form, "csrf": "forged"})
    assert response.status_code == 403 and "expired" in response.text
    # Another browser (no cookie) posting a token it read is refused too.
    with httpx.Client(base_url=str(browser.http.base_url)) as attacker:
        from tests.e2e.oauth_browser import hidden_fields

        stolen = hidden_fields(login.text)
        response = attacker.post("/oauth2/login", data={**form, **stolen})
        assert response.status_code == 403
    for path in (
        "/oauth2/consent",
        "/oauth2/register",
        "/account/devices/delete",
        "/account/password",
        "/account/logout",
    ):
        assert browser.http.post(path, data={"csrf": "forged"}).status_code == 403, path


def test_wrong_password_and_deactivated_users_cannot_sign_in(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    client = register_client(http)
    verifier, challenge = pkce_pair()
    login_at = browser.get(
        authorize_url(client["client_id"], challenge, device="DEACTDEV01")
    ).headers["location"]
    wrong = browser.sign_in(browser.get(login_at), user.localpart, "not the password")
    assert wrong.status_code == 403 and "Wrong username or password" in wrong.text
    location = browser.authorize(
        authorize_url(client["client_id"], challenge, device="DEACTDEV01"), user.localpart
    )
    token = expect(
        exchange(http, client["client_id"], callback_params(location)["code"], verifier), 200
    )
    expect(
        http.post(
            f"{CS}/account/deactivate",
            headers=user.headers,
            json={
                "auth": {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user.localpart},
                    "password": user.password,
                }
            },
        ),
        200,
    )
    expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 401)
    refresh = http.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    oauth_error(refresh, 400, "invalid_grant")
    # The browser session ended with the account; signing in again is refused.
    response = browser.get(authorize_url(client["client_id"], challenge, device="DEACTDEV02"))
    login = browser.get(response.headers["location"])
    refused = browser.sign_in(login, user.localpart)
    assert refused.status_code == 403


def test_client_registration_is_rate_limited(server_factory: object) -> None:
    server: Server = server_factory({"rate_limits": {"enabled": True}})  # type: ignore[operator]
    body = {"client_uri": CLIENT_URI, "redirect_uris": [REDIRECT_URI]}
    with server.client() as http:
        statuses = [http.post("/oauth2/registration", json=body).status_code for _ in range(25)]
        assert statuses[:20] == [201] * 20
        limited = http.post("/oauth2/registration", json=body)
        expect(limited, 429, "M_LIMIT_EXCEEDED")


def test_client_metadata_is_escaped_on_the_consent_page(
    http: httpx.Client, browser: Browser, user: User
) -> None:
    client = register_client(http, client_name='<script>alert("x")</script>')
    _, challenge = pkce_pair()
    login = browser.get(
        browser.get(authorize_url(client["client_id"], challenge)).headers["location"]
    )
    consent = browser.get(browser.sign_in(login, user.localpart).headers["location"])
    assert "<script>" not in consent.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in consent.text
    assert "script-src" not in consent.headers["content-security-policy"]
    assert consent.headers["content-security-policy"].startswith("default-src 'none'")
