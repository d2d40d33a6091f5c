"""POST /register, /register/available and registration tokens, against the real server.

https://spec.matrix.org/latest/client-server-api/#account-registration-and-management
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from nio import AsyncClient, AsyncClientConfig, RegisterResponse

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import (
    CS,
    PASSWORD,
    expect,
    login,
    mxid,
    register,
    start_registration,
    unique,
    username_available,
    whoami,
)

VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"
TOKEN_STAGE = "m.login.registration_token"


@pytest.fixture(scope="module")
def token_server(server_factory: ServerFactory) -> Server:
    """Invite-only: every registration needs a token made with the CLI."""
    return server_factory({"registration": {"require_token": True}}, open_registration=False)


@pytest.fixture(scope="module")
def closed_server(server_factory: ServerFactory) -> Server:
    return server_factory(open_registration=False)


def new_token(server: Server, uses: int | None = None) -> str:
    token = "tok-" + secrets.token_hex(6)
    args = ["registration-token", "create", "--token", token]
    if uses is not None:
        args += ["--uses", str(uses)]
    result = server.cli(*args)
    assert token in result.stdout
    return token


def is_valid(http: httpx.Client, token: str) -> bool:
    valid: bool = expect(http.get(VALIDITY, params={"token": token}), 200)["valid"]
    return valid


def assert_available(http: httpx.Client, localpart: str) -> None:
    assert expect(username_available(http, localpart), 200) == {"available": True}


# -- user-interactive auth -------------------------------------------------------------


def test_first_request_answers_with_flows_and_a_session(http: httpx.Client) -> None:
    state = start_registration(http, {"username": unique(), "password": PASSWORD})
    assert state["flows"] == [{"stages": ["m.login.dummy"]}]
    assert state["params"] == {}
    assert isinstance(state["session"], str) and state["session"]
    assert "errcode" not in state
    assert "completed" not in state


def test_completing_the_session_registers_and_logs_in(http: httpx.Client) -> None:
    localpart = unique()
    body = {
        "username": localpart,
        "password": PASSWORD,
        "device_id": "MYDEVICE",
        "initial_device_display_name": "my laptop",
    }
    session = start_registration(http, body)["session"]
    done = expect(
        http.post(
            f"{CS}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}}
        ),
        200,
    )
    assert done["user_id"] == mxid(localpart)
    assert done["device_id"] == "MYDEVICE"
    assert "refresh_token" not in done and "expires_in_ms" not in done
    me = whoami(http, done["access_token"])
    assert (me["user_id"], me["device_id"], me["is_guest"]) == (mxid(localpart), "MYDEVICE", False)
    device = expect(
        http.get(
            f"{CS}/devices/MYDEVICE", headers={"Authorization": f"Bearer {done['access_token']}"}
        ),
        200,
    )
    assert device["display_name"] == "my laptop"
    # The password registered with works for login.
    assert login(http, localpart)["user_id"] == mxid(localpart)

    # A session is single use: it cannot register a second account.
    again = http.post(
        f"{CS}/register",
        json={"username": unique(), "auth": {"type": "m.login.dummy", "session": session}},
    )
    expect(again, 400)


def test_auth_without_session_completes_in_one_round(http: httpx.Client) -> None:
    """What matrix-nio's register() sends: the dummy stage straight away."""
    localpart = unique()
    response = http.post(
        f"{CS}/register",
        json={"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
    )
    assert expect(response, 200)["user_id"] == mxid(localpart)


def test_unknown_session_is_refused(http: httpx.Client) -> None:
    localpart = unique()
    response = http.post(
        f"{CS}/register",
        json={"username": localpart, "auth": {"type": "m.login.dummy", "session": "nope"}},
    )
    expect(response, 400)
    assert_available(http, localpart)


def test_stage_not_offered_is_refused_with_the_flows(http: httpx.Client) -> None:
    localpart = unique()
    session = start_registration(http)["session"]
    response = http.post(
        f"{CS}/register",
        json={
            "username": localpart,
            "auth": {"type": TOKEN_STAGE, "token": "x", "session": session},
        },
    )
    body = expect(response, 401)
    assert body["errcode"]
    assert body["session"] == session
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]
    assert_available(http, localpart)


def test_registration_without_username_gets_a_generated_one(http: httpx.Client) -> None:
    body = register(http, None, None)
    assert body["user_id"].startswith("@") and body["user_id"].endswith(":localhost")
    assert whoami(http, body["access_token"])["user_id"] == body["user_id"]


def test_inhibit_login_returns_no_token(http: httpx.Client) -> None:
    localpart = unique()
    body = register(http, localpart, inhibit_login=True)
    assert body["user_id"] == mxid(localpart)
    assert "access_token" not in body
    assert "device_id" not in body
    # The account exists and can log in.
    expect(username_available(http, localpart), 400, "M_USER_IN_USE")
    assert login(http, localpart)["user_id"] == mxid(localpart)


def test_register_with_refresh_token(http: httpx.Client) -> None:
    body = register(http, unique(), refresh_token=True)
    assert body["refresh_token"]
    assert body["expires_in_ms"] > 0


# -- usernames -------------------------------------------------------------------------


def test_username_taken(http: httpx.Client) -> None:
    localpart = unique()
    register(http, localpart)
    register(http, localpart, status=400, errcode="M_USER_IN_USE")
    # Localparts are case-insensitive: the upper-case spelling is the same account.
    register(http, localpart.upper(), status=400, errcode="M_USER_IN_USE")


@pytest.mark.parametrize(
    "username",
    ["", "has space", "émile", "semi;colon", "colon:name", "@at", "x" * 260, "tab\tname"],
)
def test_invalid_username(http: httpx.Client, username: str) -> None:
    register(http, username, status=400, errcode="M_INVALID_USERNAME")
    expect(username_available(http, username), 400, "M_INVALID_USERNAME")


def test_username_availability(http: httpx.Client) -> None:
    localpart = unique()
    assert_available(http, localpart)
    register(http, localpart, inhibit_login=True)
    expect(username_available(http, localpart), 400, "M_USER_IN_USE")
    expect(username_available(http, localpart.upper()), 400, "M_USER_IN_USE")


def test_weak_password_is_refused_and_creates_nothing(http: httpx.Client) -> None:
    localpart = unique()
    register(http, localpart, "short", status=400, errcode="M_WEAK_PASSWORD")
    register(http, localpart, "x" * 513, status=400, errcode="M_WEAK_PASSWORD")
    assert_available(http, localpart)


# -- who may register ------------------------------------------------------------------


def test_registration_closed(closed_server: Server) -> None:
    with closed_server.client() as http:
        localpart = unique()
        response = http.post(f"{CS}/register", json={"username": localpart, "password": PASSWORD})
        expect(response, 403, "M_FORBIDDEN")
        response = http.post(
            f"{CS}/register",
            json={"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
        )
        expect(response, 403, "M_FORBIDDEN")
        expect(http.get(VALIDITY, params={"token": "anything"}), 403, "M_FORBIDDEN")
        assert_available(http, localpart)


def test_guest_registration_refused_when_guests_are_disabled(http: httpx.Client) -> None:
    response = http.post(f"{CS}/register", params={"kind": "guest"}, json={})
    expect(response, 403, "M_FORBIDDEN")


def test_unknown_kind_is_refused(http: httpx.Client) -> None:
    response = http.post(f"{CS}/register", params={"kind": "admin"}, json={})
    expect(response, 400, "M_INVALID_PARAM")


# -- registration tokens ---------------------------------------------------------------


def test_token_registration(token_server: Server) -> None:
    token = new_token(token_server, uses=1)
    with token_server.client() as http:
        assert is_valid(http, token)
        localpart = unique("invited")
        body = {"username": localpart, "password": PASSWORD}
        state = start_registration(http, body)
        assert state["flows"] == [{"stages": [TOKEN_STAGE, "m.login.dummy"]}]

        # The dummy stage alone does not complete the flow: nothing is registered.
        dummy = http.post(
            f"{CS}/register",
            json={**body, "auth": {"type": "m.login.dummy", "session": state["session"]}},
        )
        expect(dummy, 401)
        assert_available(http, localpart)

        done = http.post(
            f"{CS}/register",
            json={
                **body,
                "auth": {"type": TOKEN_STAGE, "token": token, "session": state["session"]},
            },
        )
        assert expect(done, 200)["user_id"] == mxid(localpart)
        whoami(http, done.json()["access_token"])

        # One use only: the token is spent, and refused from now on.
        assert not is_valid(http, token)
        second = unique("invited")
        state = start_registration(http, {"username": second, "password": PASSWORD})
        refused = http.post(
            f"{CS}/register",
            json={
                "username": second,
                "password": PASSWORD,
                "auth": {"type": TOKEN_STAGE, "token": token, "session": state["session"]},
            },
        )
        body = expect(refused, 401, "M_UNAUTHORIZED")
        assert body["session"] == state["session"]
        assert body["flows"] == [{"stages": [TOKEN_STAGE, "m.login.dummy"]}]
        assert_available(http, second)


def test_wrong_token_is_refused(token_server: Server) -> None:
    with token_server.client() as http:
        localpart = unique()
        state = start_registration(http, {"username": localpart})
        response = http.post(
            f"{CS}/register",
            json={
                "username": localpart,
                "auth": {"type": TOKEN_STAGE, "token": "never-made", "session": state["session"]},
            },
        )
        expect(response, 401, "M_UNAUTHORIZED")
        missing = http.post(
            f"{CS}/register",
            json={
                "username": localpart,
                "auth": {"type": TOKEN_STAGE, "session": state["session"]},
            },
        )
        expect(missing, 401, "M_MISSING_PARAM")
        assert_available(http, localpart)


def test_token_with_several_uses(token_server: Server) -> None:
    token = new_token(token_server, uses=2)
    with token_server.client() as http:
        stage = {"type": TOKEN_STAGE, "token": token}
        register(http, unique(), auth=stage, inhibit_login=True)
        assert is_valid(http, token)
        register(http, unique(), auth=stage, inhibit_login=True)
        assert not is_valid(http, token)
        register(http, unique(), auth=stage, status=401, errcode="M_UNAUTHORIZED")
        listed = token_server.cli("registration-token", "list", "--json").stdout
        assert f'"token": "{token}", "uses_allowed": 2, "completed": 2' in listed


def test_revoked_token_is_refused(token_server: Server) -> None:
    token = new_token(token_server)
    with token_server.client() as http:
        assert is_valid(http, token)
        token_server.cli("registration-token", "revoke", token)
        assert not is_valid(http, token)
        register(http, unique(), auth={"type": TOKEN_STAGE, "token": token}, status=401)


def test_token_validity(token_server: Server, http: httpx.Client) -> None:
    with token_server.client() as invite_only:
        assert not is_valid(invite_only, "no-such-token")
        response = invite_only.get(VALIDITY)
        expect(response, 400, "M_MISSING_PARAM")
    # Open registration with no token required: tokens still answer, as invalid.
    assert not is_valid(http, "no-such-token")


async def test_nio_register_with_token(token_server: Server) -> None:
    """matrix-nio's token registration: token stage, then the dummy stage, same session."""
    token = new_token(token_server, uses=1)
    client = AsyncClient(token_server.url, config=AsyncClientConfig(max_limit_exceeded=0))
    try:
        localpart = unique("nio-invited")
        response = await client.register_with_token(localpart, PASSWORD, token)
        assert isinstance(response, RegisterResponse), response
        assert response.user_id == mxid(localpart)
    finally:
        await client.close()
