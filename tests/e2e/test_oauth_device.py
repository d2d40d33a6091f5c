"""The device authorization grant (RFC 8628): a client without a browser gets a user
code, the user enters it on /oauth2/link (any browser), signs in and consents, and the
polling client receives its tokens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, bearer, expect
from tests.e2e.oauth_browser import Browser, register_client

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def browser(server: Server) -> Iterator[Browser]:
    opened = Browser.open(server.url)
    yield opened
    opened.close()


def device_client(http: httpx.Client) -> str:
    client = register_client(http, grant_types=[GRANT, "refresh_token"], redirect_uris=[])
    assert client["grant_types"] == [GRANT, "refresh_token"]
    return str(client["client_id"])


def start(http: httpx.Client, client_id: str, device: str) -> dict[str, object]:
    scope = f"urn:matrix:client:api:* urn:matrix:client:device:{device}"
    answer: dict[str, object] = expect(
        http.post("/oauth2/device", data={"client_id": client_id, "scope": scope}), 200
    )
    return answer


def poll(http: httpx.Client, client_id: str, device_code: object) -> httpx.Response:
    return http.post(
        "/oauth2/token",
        data={"grant_type": GRANT, "device_code": str(device_code), "client_id": client_id},
    )


def oauth_error(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


def test_device_flow_from_code_to_tokens(
    http: httpx.Client, server: Server, browser: Browser, user: User
) -> None:
    metadata = expect(http.get("/_matrix/client/v1/auth_metadata"), 200)
    assert metadata["device_authorization_endpoint"] == server.url + "/oauth2/device"
    assert GRANT in metadata["grant_types_supported"]
    client_id = device_client(http)
    answer = start(http, client_id, "TVDEVICE01")
    assert answer["verification_uri"] == server.url + "/oauth2/link"
    assert answer["expires_in"] == 600 and answer["interval"] == 5
    user_code = str(answer["user_code"])
    assert len(user_code) == 9 and user_code[4] == "-"
    oauth_error(poll(http, client_id, answer["device_code"]), "authorization_pending")
    oauth_error(poll(http, client_id, answer["device_code"]), "slow_down")

    # The user types the code (lower case, without the dash) on another device.
    link = browser.get("/oauth2/link")
    assert link.status_code == 200 and 'name="user_code"' in link.text
    entered = browser.get("/oauth2/link?user_code=" + user_code.replace("-", "").lower())
    login_at = entered.headers["location"]
    assert login_at.startswith("/oauth2/login?pending=")
    consent_at = browser.sign_in(browser.get(login_at), user.localpart).headers["location"]
    consent = browser.get(consent_at)
    assert "Test App" in consent.text and "TVDEVICE01" in consent.text
    done = browser.submit(consent, "/oauth2/consent", action="allow")
    assert done.status_code == 200 and "go back to your device" in done.text
    # The code cannot be entered twice.
    assert browser.get("/oauth2/link?user_code=" + user_code).status_code == 400

    token = expect(poll(http, client_id, answer["device_code"]), 200)
    assert token["scope"] == "urn:matrix:client:api:* urn:matrix:client:device:TVDEVICE01"
    who = expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 200)
    assert who == {"user_id": user.user_id, "device_id": "TVDEVICE01", "is_guest": False}
    refreshed = expect(
        http.post(
            "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
                "client_id": client_id,
            },
        ),
        200,
    )
    assert refreshed["access_token"] != token["access_token"]
    # The device code is used up.
    oauth_error(poll(http, client_id, answer["device_code"]), "invalid_grant")


def test_denied_and_bad_device_requests(http: httpx.Client, browser: Browser, user: User) -> None:
    client_id = device_client(http)
    answer = start(http, client_id, "TVDEVICE02")
    page = browser.get(browser.get(str(answer["verification_uri_complete"])).headers["location"])
    consent = browser.get(browser.sign_in(page, user.localpart).headers["location"])
    denied = browser.submit(consent, "/oauth2/consent", action="deny")
    assert "not connected" in denied.text
    oauth_error(poll(http, client_id, answer["device_code"]), "access_denied")
    oauth_error(poll(http, client_id, answer["device_code"]), "invalid_grant")

    other = device_client(http)
    answer = start(http, client_id, "TVDEVICE03")
    oauth_error(poll(http, other, answer["device_code"]), "invalid_grant")
    oauth_error(poll(http, client_id, "made-up"), "invalid_grant")
    oauth_error(http.post("/oauth2/token", data={"grant_type": GRANT}), "invalid_request")

    code_only = register_client(http)  # registered without the device grant
    refused = http.post(
        "/oauth2/device",
        data={"client_id": code_only["client_id"], "scope": "urn:matrix:client:api:*"},
    )
    oauth_error(refused, "unauthorized_client")
    unknown = http.post("/oauth2/device", data={"client_id": "nope", "scope": "x"})
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    oauth_error(http.post("/oauth2/device", data={"scope": "x"}), "invalid_request")
    no_device = http.post(
        "/oauth2/device", data={"client_id": client_id, "scope": "urn:matrix:client:api:*"}
    )
    oauth_error(no_device, "invalid_scope")
    unknown_code = browser.get("/oauth2/link?user_code=BCDF-GHJK")
    assert unknown_code.status_code == 400 and "unknown" in unknown_code.text
