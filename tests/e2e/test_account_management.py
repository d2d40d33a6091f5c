"""Password change, deactivation and device deletion: user-interactive auth with a password.

https://spec.matrix.org/latest/client-server-api/#account-registration-and-management
https://spec.matrix.org/latest/client-server-api/#user-interactive-authentication-api
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from tests.e2e.matrix import (
    CS,
    PASSWORD,
    User,
    expect,
    login,
    password_auth,
    register,
    register_user,
    unique,
    username_available,
    whoami,
)

NEW_PASSWORD = "a much better passphrase"
PASSWORD_FLOWS = [{"stages": ["m.login.password"]}]


def post(http: httpx.Client, user: User, path: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"{CS}{path}", headers=user.headers, json=body)


def open_session(http: httpx.Client, user: User, path: str, body: dict[str, Any]) -> str:
    """The first round of UIA on `path`: a 401 with the password flow and a session."""
    state = expect(post(http, user, path, body), 401)
    assert state["flows"] == PASSWORD_FLOWS
    assert "errcode" not in state
    session: str = state["session"]
    return session


def device_ids(http: httpx.Client, user: User) -> set[str]:
    body = expect(http.get(f"{CS}/devices", headers=user.headers), 200)
    return {device["device_id"] for device in body["devices"]}


# -- password change -------------------------------------------------------------------


def test_change_password(http: httpx.Client, user: User) -> None:
    other = login(http, user.localpart)
    body: dict[str, Any] = {"new_password": NEW_PASSWORD}
    session = open_session(http, user, "/account/password", body)

    wrong = {**password_auth(user, session), "password": "not it"}
    refused = expect(post(http, user, "/account/password", {**body, "auth": wrong}), 401)
    assert refused["errcode"] == "M_FORBIDDEN"
    assert refused["flows"] == PASSWORD_FLOWS
    assert refused["session"] == session
    login(http, user.localpart)  # nothing changed yet

    done = post(http, user, "/account/password", {**body, "auth": password_auth(user, session)})
    assert expect(done, 200) == {}

    login(http, user.localpart, PASSWORD, status=403, errcode="M_FORBIDDEN")
    login(http, user.localpart, NEW_PASSWORD)
    # logout_devices defaults to true: every other device is logged out, this one stays.
    whoami(http, other["access_token"], status=401, errcode="M_UNKNOWN_TOKEN")
    assert whoami(http, user.access_token)["user_id"] == user.user_id

    # The completed session is spent.
    user.password = NEW_PASSWORD
    again = post(
        http,
        user,
        "/account/password",
        {"new_password": PASSWORD, "auth": password_auth(user, session)},
    )
    expect(again, 400)


def test_change_password_keeping_devices(http: httpx.Client, user: User) -> None:
    other = login(http, user.localpart)
    body = {"new_password": NEW_PASSWORD, "logout_devices": False}
    response = post(http, user, "/account/password", {**body, "auth": password_auth(user)})
    expect(response, 200)
    assert whoami(http, other["access_token"])["user_id"] == user.user_id
    assert device_ids(http, user) == {user.device_id, other["device_id"]}


def test_change_password_refuses_a_weak_password(http: httpx.Client, user: User) -> None:
    response = post(
        http, user, "/account/password", {"new_password": "short", "auth": password_auth(user)}
    )
    expect(response, 400, "M_WEAK_PASSWORD")
    login(http, user.localpart)


def test_password_stage_must_prove_this_account(http: httpx.Client, user: User) -> None:
    mallory = register_user(http, "mallory")
    body = {"new_password": NEW_PASSWORD, "auth": password_auth(mallory)}
    refused = expect(post(http, user, "/account/password", body), 401)
    assert refused["errcode"] == "M_FORBIDDEN"
    login(http, user.localpart)
    login(http, mallory.localpart)


def test_passwordless_account_sets_a_password_with_the_dummy_stage(http: httpx.Client) -> None:
    body = register(http, unique("nopass"), None)
    user = User(body["user_id"][1:].split(":")[0], "", body["access_token"], body["device_id"])
    state = expect(post(http, user, "/account/password", {"new_password": NEW_PASSWORD}), 401)
    assert state["flows"] == [{"stages": ["m.login.dummy"]}]
    auth = {"type": "m.login.dummy", "session": state["session"]}
    expect(post(http, user, "/account/password", {"new_password": NEW_PASSWORD, "auth": auth}), 200)
    login(http, user.localpart, NEW_PASSWORD)


# -- deactivation ----------------------------------------------------------------------


def test_deactivate(http: httpx.Client, user: User) -> None:
    other = login(http, user.localpart, refresh_token=True)
    session = open_session(http, user, "/account/deactivate", {})
    wrong = {**password_auth(user, session), "password": "nope"}
    expect(post(http, user, "/account/deactivate", {"auth": wrong}), 401)
    whoami(http, user.access_token)

    done = post(http, user, "/account/deactivate", {"auth": password_auth(user, session)})
    assert expect(done, 200) == {"id_server_unbind_result": "no-support"}

    for token in (user.access_token, other["access_token"]):
        whoami(http, token, status=401, errcode="M_UNKNOWN_TOKEN")
    refused = http.post(f"{CS}/refresh", json={"refresh_token": other["refresh_token"]})
    expect(refused, 401, "M_UNKNOWN_TOKEN")
    response = http.post(
        f"{CS}/login",
        json={"type": "m.login.password", "user": user.localpart, "password": PASSWORD},
    )
    assert response.status_code == 403
    assert response.json()["errcode"] in ("M_USER_DEACTIVATED", "M_FORBIDDEN")
    # The name is never handed out again, and the profile is gone.
    expect(username_available(http, user.localpart), 400, "M_USER_IN_USE")
    expect(http.get(f"{CS}/profile/{quote(user.user_id)}"), 404, "M_NOT_FOUND")


def test_deactivate_with_erase(http: httpx.Client, user: User) -> None:
    response = post(http, user, "/account/deactivate", {"erase": True, "auth": password_auth(user)})
    expect(response, 200)
    expect(http.get(f"{CS}/profile/{quote(user.user_id)}/displayname"), 404)


def test_deactivate_without_body_asks_for_auth(http: httpx.Client, user: User) -> None:
    response = http.post(f"{CS}/account/deactivate", headers=user.headers)
    assert expect(response, 401)["flows"] == PASSWORD_FLOWS
    whoami(http, user.access_token)


# -- sessions are bound to one operation -----------------------------------------------


def test_session_from_one_endpoint_is_refused_on_another(http: httpx.Client, user: User) -> None:
    session = open_session(http, user, "/account/password", {"new_password": NEW_PASSWORD})
    response = post(http, user, "/account/deactivate", {"auth": password_auth(user, session)})
    expect(response, 403, "M_FORBIDDEN")
    assert whoami(http, user.access_token)["user_id"] == user.user_id
    login(http, user.localpart)

    # A session opened to delete one device does not delete another (same path shape).
    phone = login(http, user.localpart)
    laptop = login(http, user.localpart)
    opened = http.request(
        "DELETE", f"{CS}/devices/{phone['device_id']}", headers=user.headers, json={}
    )
    session = expect(opened, 401)["session"]
    response = http.request(
        "DELETE",
        f"{CS}/devices/{laptop['device_id']}",
        headers=user.headers,
        json={"auth": password_auth(user, session)},
    )
    expect(response, 403, "M_FORBIDDEN")
    assert {phone["device_id"], laptop["device_id"]} <= device_ids(http, user)


# -- device deletion -------------------------------------------------------------------


def test_delete_device_with_password(http: httpx.Client, user: User) -> None:
    other = login(http, user.localpart)
    path = f"{CS}/devices/{other['device_id']}"
    state = expect(http.request("DELETE", path, headers=user.headers), 401)
    assert state["flows"] == PASSWORD_FLOWS
    auth = password_auth(user, state["session"])
    assert (
        expect(http.request("DELETE", path, headers=user.headers, json={"auth": auth}), 200) == {}
    )
    whoami(http, other["access_token"], status=401, errcode="M_UNKNOWN_TOKEN")
    assert device_ids(http, user) == {user.device_id}
    # A device that does not exist: 404 before any auth is asked for.
    expect(http.request("DELETE", path, headers=user.headers), 404, "M_NOT_FOUND")


def test_delete_devices_in_bulk(http: httpx.Client, user: User) -> None:
    others = [login(http, user.localpart)["device_id"] for _ in range(3)]
    body: dict[str, Any] = {"devices": [*others, "NOSUCHDEVICE"]}
    state = expect(http.post(f"{CS}/delete_devices", headers=user.headers, json=body), 401)
    body["auth"] = password_auth(user, state["session"])
    expect(http.post(f"{CS}/delete_devices", headers=user.headers, json=body), 200)
    assert device_ids(http, user) == {user.device_id}
