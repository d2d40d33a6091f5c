"""Small Client-Server API helpers over raw httpx, named with the spec's verbs."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

CS = "/_matrix/client/v3"
SERVER_NAME = "localhost"
PASSWORD = "correct horse battery staple"

_counter = itertools.count()


def unique(prefix: str = "user") -> str:
    """A localpart no other test uses (tests share one server)."""
    return f"{prefix}-{next(_counter)}-{secrets.token_hex(3)}"


def mxid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def expect(response: httpx.Response, status: int, errcode: str | None = None) -> Any:
    """Assert the status (and errcode), return the JSON body."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: expected {status}, "
        f"got {response.status_code}: {response.text[:500]}"
    )
    body = response.json() if response.content else None
    if errcode is not None:
        assert isinstance(body, dict), body
        assert body.get("errcode") == errcode, f"expected {errcode}: {body}"
        assert isinstance(body.get("error", ""), str)
    return body


@dataclass
class User:
    localpart: str
    password: str
    access_token: str
    device_id: str
    refresh_token: str | None = None

    @property
    def user_id(self) -> str:
        return mxid(self.localpart)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def start_registration(http: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The opening round of /register: a 401 carrying the UIA flows and a session."""
    state: dict[str, Any] = expect(http.post(f"{CS}/register", json=body or {}), 401)
    return state


def register(
    http: httpx.Client,
    username: str | None,
    password: str | None = PASSWORD,
    *,
    status: int = 200,
    errcode: str | None = None,
    auth: dict[str, Any] | None = None,
    **extra: Any,
) -> Any:
    """POST /register through user-interactive auth (m.login.dummy unless `auth` given)."""
    body: dict[str, Any] = {**extra}
    if username is not None:
        body["username"] = username
    if password is not None:
        body["password"] = password
    first = http.post(f"{CS}/register", json=body)
    if first.status_code != 401:
        return expect(first, status, errcode)
    session = first.json()["session"]
    stage = auth or {"type": "m.login.dummy"}
    response = http.post(f"{CS}/register", json={**body, "auth": {**stage, "session": session}})
    # Like any client following the flows: finish a flow whose only stage left is dummy.
    progress = response.json() if response.status_code == 401 else {}
    remaining = [
        [s for s in flow["stages"] if s not in progress.get("completed", [])]
        for flow in progress.get("flows", [])
    ]
    if "errcode" not in progress and ["m.login.dummy"] in remaining:
        dummy = {"type": "m.login.dummy", "session": session}
        response = http.post(f"{CS}/register", json={**body, "auth": dummy})
    return expect(response, status, errcode)


def register_user(http: httpx.Client, prefix: str = "user", **extra: Any) -> User:
    localpart = unique(prefix)
    body = register(http, localpart, PASSWORD, **extra)
    assert body["user_id"] == mxid(localpart)
    return User(
        localpart, PASSWORD, body["access_token"], body["device_id"], body.get("refresh_token")
    )


def login(
    http: httpx.Client,
    user: str,
    password: str = PASSWORD,
    *,
    status: int = 200,
    errcode: str | None = None,
    **extra: Any,
) -> Any:
    """POST /login with m.login.password and an m.id.user identifier."""
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
        **extra,
    }
    return expect(http.post(f"{CS}/login", json=body), status, errcode)


def whoami(http: httpx.Client, token: str, *, status: int = 200, errcode: str | None = None) -> Any:
    return expect(http.get(f"{CS}/account/whoami", headers=bearer(token)), status, errcode)


def logout(http: httpx.Client, token: str, *, all_devices: bool = False) -> None:
    path = f"{CS}/logout/all" if all_devices else f"{CS}/logout"
    expect(http.post(path, headers=bearer(token), json={}), 200)


def username_available(http: httpx.Client, username: str) -> httpx.Response:
    return http.get(f"{CS}/register/available", params={"username": username})


def password_auth(user: User, session: str | None = None) -> dict[str, Any]:
    """An m.login.password UIA stage proving `user`."""
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password,
    }
    if session is not None:
        auth["session"] = session
    return auth
