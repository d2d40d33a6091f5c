"""Login, refresh tokens, logout and login rate limits against the real server.

https://spec.matrix.org/latest/client-server-api/#login
https://spec.matrix.org/latest/client-server-api/#refreshing-access-tokens
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import (
    CS,
    PASSWORD,
    User,
    bearer,
    expect,
    login,
    logout,
    mxid,
    register,
    unique,
    whoami,
)

SHORT_LIFETIME_MS = 1000


def refresh(
    http: httpx.Client, refresh_token: str, *, status: int = 200, errcode: str | None = None
) -> dict[str, object]:
    body: dict[str, object] = expect(
        http.post(f"{CS}/refresh", json={"refresh_token": refresh_token}), status, errcode
    )
    return body


@pytest.fixture(scope="module")
def short_lived(server_factory: ServerFactory) -> Server:
    """Access tokens issued with a refresh token live one second."""
    return server_factory({"auth": {"access_token_lifetime_ms": SHORT_LIFETIME_MS}})


def test_login_flows(http: httpx.Client) -> None:
    # With the built-in OAuth server on (the default), SSO and m.login.token go through
    # its pages (docs/auth.md); the password flow stays for older clients.
    flows = expect(http.get(f"{CS}/login"), 200)["flows"]
    assert flows == [
        {"type": "m.login.password"},
        {"type": "m.login.sso", "oauth_aware_preferred": True},
        {"type": "m.login.token"},
    ]


def test_password_login_ways_of_naming_the_user(http: httpx.Client, user: User) -> None:
    by_identifier = login(http, user.localpart)
    assert by_identifier["user_id"] == user.user_id
    assert by_identifier["access_token"] and by_identifier["device_id"]
    assert "refresh_token" not in by_identifier and "expires_in_ms" not in by_identifier

    assert login(http, user.user_id)["user_id"] == user.user_id
    assert login(http, user.localpart.upper())["user_id"] == user.user_id

    legacy = {"type": "m.login.password", "user": user.localpart, "password": PASSWORD}
    assert expect(http.post(f"{CS}/login", json=legacy), 200)["user_id"] == user.user_id

    # Every login is its own device with its own token.
    tokens = {
        login(http, user.localpart, initial_device_display_name="laptop")["access_token"]
        for _ in range(2)
    }
    assert len(tokens) == 2
    for token in tokens:
        assert whoami(http, token)["user_id"] == user.user_id


def test_login_with_existing_device_id_takes_it_over(http: httpx.Client, user: User) -> None:
    first = login(http, user.localpart, device_id="SHARED")
    second = login(http, user.localpart, device_id="SHARED")
    assert first["device_id"] == second["device_id"] == "SHARED"
    whoami(http, first["access_token"], status=401, errcode="M_UNKNOWN_TOKEN")
    assert whoami(http, second["access_token"])["device_id"] == "SHARED"


def test_wrong_password_and_unknown_user(http: httpx.Client, user: User) -> None:
    login(http, user.localpart, "wrong password", status=403, errcode="M_FORBIDDEN")
    login(http, unique("nobody"), status=403, errcode="M_FORBIDDEN")
    login(http, f"@{user.localpart}:elsewhere.example", status=403, errcode="M_FORBIDDEN")


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"password": PASSWORD}, "M_UNKNOWN"),
        ({"type": "m.login.password", "password": PASSWORD}, None),
        ({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "a"}}, None),
        ({"type": "m.login.password", "identifier": "a", "password": PASSWORD}, "M_BAD_JSON"),
        (
            {"type": "m.login.password", "identifier": {"type": "m.id.phone"}, "password": "x"},
            None,
        ),
        ({"type": "m.login.password", "user": "a", "password": 5}, None),
        ({"type": "m.login.password", "user": "a", "password": "x", "refresh_token": 1}, None),
        ({"type": "m.login.password", "user": "a", "password": "x", "device_id": 7}, None),
    ],
)
def test_bad_login_requests(http: httpx.Client, body: dict[str, object], errcode: str) -> None:
    expect(http.post(f"{CS}/login", json=body), 400, errcode)


def test_refresh_token_rotation(http: httpx.Client, user: User) -> None:
    first = login(http, user.localpart, refresh_token=True)
    assert first["refresh_token"]
    assert first["expires_in_ms"] == 5 * 60 * 1000
    device = first["device_id"]

    second = refresh(http, first["refresh_token"])
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] not in (None, first["refresh_token"])
    assert second["expires_in_ms"] == 5 * 60 * 1000

    # The new tokens are not used yet: the old refresh token still works (a client
    # that lost the response retries), and supersedes the answer it had given.
    retried = refresh(http, first["refresh_token"])
    whoami(http, str(second["access_token"]), status=401, errcode="M_UNKNOWN_TOKEN")

    # Using the new access token revokes the old refresh token.
    me = whoami(http, str(retried["access_token"]))
    assert (me["user_id"], me["device_id"]) == (user.user_id, device)
    refresh(http, first["refresh_token"], status=401, errcode="M_UNKNOWN_TOKEN")
    whoami(http, first["access_token"], status=401, errcode="M_UNKNOWN_TOKEN")

    third = refresh(http, str(retried["refresh_token"]))
    assert whoami(http, str(third["access_token"]))["device_id"] == device


def test_using_the_new_refresh_token_revokes_the_old_one(http: httpx.Client, user: User) -> None:
    first = login(http, user.localpart, refresh_token=True)
    second = refresh(http, first["refresh_token"])
    third = refresh(http, str(second["refresh_token"]))
    refresh(http, first["refresh_token"], status=401, errcode="M_UNKNOWN_TOKEN")
    assert whoami(http, str(third["access_token"]))["user_id"] == user.user_id


def test_unknown_refresh_token(http: httpx.Client) -> None:
    body = refresh(http, "dlr_not-a-token", status=401, errcode="M_UNKNOWN_TOKEN")
    assert body.get("soft_logout", False) is False
    expect(http.post(f"{CS}/refresh", json={}), 400, "M_BAD_JSON")


def test_access_token_is_not_a_refresh_token(http: httpx.Client, user: User) -> None:
    refresh(http, user.access_token, status=401, errcode="M_UNKNOWN_TOKEN")


def test_expired_access_token_is_a_soft_logout(short_lived: Server) -> None:
    with short_lived.client() as http:
        localpart = unique()
        registered = register(http, localpart, refresh_token=True)
        assert registered["expires_in_ms"] == SHORT_LIFETIME_MS
        plain = login(http, localpart)  # no refresh token: no expiry
        assert "expires_in_ms" not in plain
        time.sleep(SHORT_LIFETIME_MS / 1000 + 0.2)

        body = whoami(http, registered["access_token"], status=401, errcode="M_UNKNOWN_TOKEN")
        assert body["soft_logout"] is True
        assert whoami(http, plain["access_token"])["user_id"] == mxid(localpart)

        renewed = refresh(http, registered["refresh_token"])
        assert renewed["expires_in_ms"] == SHORT_LIFETIME_MS
        me = whoami(http, str(renewed["access_token"]))
        assert me["device_id"] == registered["device_id"]


def test_logout_all_ends_every_token(http: httpx.Client, user: User) -> None:
    other = login(http, user.localpart, refresh_token=True)
    logout(http, user.access_token, all_devices=True)
    for token in (user.access_token, other["access_token"]):
        body = whoami(http, token, status=401, errcode="M_UNKNOWN_TOKEN")
        assert body["soft_logout"] is False
    refresh(http, other["refresh_token"], status=401, errcode="M_UNKNOWN_TOKEN")
    # The account itself is fine: logging in again works and shows one device.
    fresh = login(http, user.localpart)
    devices = expect(http.get(f"{CS}/devices", headers=bearer(fresh["access_token"])), 200)
    assert [d["device_id"] for d in devices["devices"]] == [fresh["device_id"]]


def test_logout_ends_only_this_device(http: httpx.Client, user: User) -> None:
    other = login(http, user.localpart)
    logout(http, other["access_token"])
    whoami(http, other["access_token"], status=401, errcode="M_UNKNOWN_TOKEN")
    assert whoami(http, user.access_token)["user_id"] == user.user_id
    # Logging out twice: the token is already gone.
    response = http.post(f"{CS}/logout", headers=bearer(other["access_token"]), json={})
    expect(response, 401, "M_UNKNOWN_TOKEN")


# -- rate limits -----------------------------------------------------------------------


def assert_limited(response: httpx.Response) -> None:
    body = expect(response, 429, "M_LIMIT_EXCEEDED")
    assert isinstance(body["retry_after_ms"], int) and body["retry_after_ms"] > 0
    assert int(response.headers["retry-after"]) >= 1


def test_failed_logins_are_rate_limited(server_factory: ServerFactory) -> None:
    limited = server_factory({"rate_limits": {"enabled": True}}, shared=False)
    with limited.client() as http:
        localpart = unique()
        limited.cli("user", "add", localpart, "--password", PASSWORD)
        statuses = []
        for _ in range(10):
            response = http.post(
                f"{CS}/login",
                json={"type": "m.login.password", "user": localpart, "password": "wrong"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert_limited(response)
                break
        assert statuses[:5] == [403] * 5, statuses
        assert statuses[-1] == 429, statuses
        # Even the right password waits now.
        assert_limited(
            http.post(
                f"{CS}/login",
                json={"type": "m.login.password", "user": localpart, "password": PASSWORD},
            )
        )
    limited.stop()


def test_registration_is_rate_limited(server_factory: ServerFactory) -> None:
    limited = server_factory({"rate_limits": {"enabled": True}}, shared=False)
    with limited.client() as http:
        # Sending the dummy stage straight away (as matrix-nio does) counts too.
        for _ in range(5):
            body = {"username": unique(), "auth": {"type": "m.login.dummy"}}
            expect(http.post(f"{CS}/register", json=body), 200)
        body = {"username": unique(), "auth": {"type": "m.login.dummy"}}
        assert_limited(http.post(f"{CS}/register", json=body))
        assert_limited(http.post(f"{CS}/register", json={"username": unique()}))
    limited.stop()
