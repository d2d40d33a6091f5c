"""Hostile and broken input on every route of the app: spec errors, never a 500.

The routes come from `dendrite_lite.app.ROUTES`, so a new endpoint is swept too. Every
response seen by this module's client is checked for CORS and, when an error, for a
Matrix error body (see `_check_response`).

https://spec.matrix.org/latest/client-server-api/#standard-error-response
https://spec.matrix.org/latest/client-server-api/#web-browser-clients
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from dendrite_lite.app import ROUTES
from tests.e2e.harness import Server
from tests.e2e.matrix import (
    CS,
    PASSWORD,
    User,
    bearer,
    expect,
    login,
    mxid,
    register_user,
    unique,
    username_available,
    whoami,
)

MAX_BODY = 1024 * 1024  # limits.max_request_body_bytes default
ERROR_BODY = re.compile(r"^M_[A-Z_]+$")


PARAM = re.compile(r"{(\w+)(?::\w+)?}")  # Litestar's {name:type}
PATH_DEFAULTS = {
    "key_name": "displayname",
    "type_": "org.example.test",
    "room_id": quote("!room:localhost", safe=""),
    "room_id_or_alias": quote("!room:localhost", safe=""),
    "event_type": "m.room.message",
    "state_key": "key",
    "event_id": quote("$event", safe=""),
    "txn_id": "txn1",
}
# The accounts foundation; other routes (rooms...) get the generic sweeps only.
FOUNDATION_MODULES = {
    f"dendrite_lite.api.{name}"
    for name in (
        "server_info",
        "client.versions",
        "client.registration",
        "client.login",
        "client.account",
        "client.devices",
        "client.profile",
        "client.account_data",
        "client.capabilities",
    )
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str  # as Litestar declares it: /x/{user_id:str}
    module: str
    auth: bool  # needs an access token
    body: bool  # reads a JSON body
    body_required: bool

    @property
    def id(self) -> str:
        path = PARAM.sub(lambda m: "{" + m.group(1) + "}", self.template)
        return f"{self.method} {path}"

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.template)

    @property
    def foundation(self) -> bool:
        return self.module in FOUNDATION_MODULES

    def path(self, user: User, **values: str) -> str:
        defaults = {
            **PATH_DEFAULTS,
            "user_id": quote(user.user_id, safe=""),
            "device_id": user.device_id,
            **values,
        }
        return PARAM.sub(lambda m: defaults.get(m.group(1), "x"), self.template)


# Handlers that authenticate themselves because the token is optional (a password reset
# by email needs none); the sweep calls them with the victim's token.
OPTIONAL_AUTH = {("POST", "/_matrix/client/v3/account/password")}


def _endpoints() -> list[Endpoint]:
    found = []
    for handler in ROUTES:
        parameters = inspect.signature(handler.fn).parameters
        data = parameters.get("data")
        for method in sorted(handler.http_methods):
            for template in sorted(handler.paths):
                found.append(
                    Endpoint(
                        method,
                        template,
                        handler.fn.__module__,
                        auth="requester" in parameters or (method, template) in OPTIONAL_AUTH,
                        body=data is not None,
                        body_required=data is not None and data.default is inspect.Parameter.empty,
                    )
                )
    return found


ENDPOINTS = _endpoints()
BODY_ENDPOINTS = [e for e in ENDPOINTS if e.body]
# Served only in external-MAS mode (tests/e2e/test_oauth_external.py); the sweep's server
# is in the built-in mode, where they answer 404 M_UNRECOGNIZED before reading a body.
EXTERNAL_MODE_MODULES = {"dendrite_lite.api.client.mas"}
AUTH_ENDPOINTS = [e for e in ENDPOINTS if e.auth]
# Values for the required query parameters of every route (unused ones are ignored).
QUERY = {"username": "someone", "token": "sometoken", "ts": "1", "dir": "f"}

# A body each endpoint accepts (or at least reads without complaint about its shape).
GOOD_BODIES: dict[str, dict[str, Any]] = {
    "POST /_matrix/client/v3/register": {},
    "POST /_matrix/client/v3/login": {"type": "m.login.password", "user": "x", "password": "y"},
    "POST /_matrix/client/v3/refresh": {"refresh_token": "dlr_nothing"},
    "POST /_matrix/client/v3/account/password": {"new_password": "long enough password"},
    "POST /_matrix/client/v3/account/deactivate": {},
    "PUT /_matrix/client/v3/devices/{device_id}": {"display_name": "renamed"},
    "DELETE /_matrix/client/v3/devices/{device_id}": {},
    "POST /_matrix/client/v3/delete_devices": {"devices": []},
    "PUT /_matrix/client/v3/profile/{user_id}/{key_name}": {"displayname": "Victim"},
    "PUT /_matrix/client/v3/user/{user_id}/account_data/{type_}": {"k": "v"},
    "PUT /_matrix/client/v3/user/{user_id}/rooms/{room_id}/account_data/{type_}": {"k": "v"},
}

# Valid JSON with a field of the wrong type, per endpoint.
WRONG_FIELD_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("POST /_matrix/client/v3/register", {"username": 5}),
    ("POST /_matrix/client/v3/register", {"inhibit_login": "yes"}),
    ("POST /_matrix/client/v3/register", {"auth": "dummy"}),
    ("POST /_matrix/client/v3/register", {"auth": {"type": 5}}),
    ("POST /_matrix/client/v3/register", {"auth": {"type": "m.login.dummy", "session": 5}}),
    ("POST /_matrix/client/v3/login", {"type": "m.login.password", "user": 5, "password": "x"}),
    ("POST /_matrix/client/v3/login", {"type": "m.login.password", "identifier": []}),
    ("POST /_matrix/client/v3/refresh", {"refresh_token": 5}),
    ("POST /_matrix/client/v3/account/password", {"new_password": 5}),
    ("POST /_matrix/client/v3/account/password", {"new_password": "x" * 10, "auth": []}),
    ("POST /_matrix/client/v3/account/deactivate", {"erase": "yes"}),
    ("POST /_matrix/client/v3/account/deactivate", {"auth": 5}),
    ("PUT /_matrix/client/v3/devices/{device_id}", {"display_name": 5}),
    ("DELETE /_matrix/client/v3/devices/{device_id}", {"auth": "x"}),
    ("POST /_matrix/client/v3/delete_devices", {"devices": "ABC"}),
    ("POST /_matrix/client/v3/delete_devices", {"devices": [1]}),
    ("PUT /_matrix/client/v3/profile/{user_id}/{key_name}", {"displayname": 5}),
]

# Valid JSON missing what the endpoint cannot do without, and the errcode our server uses.
MISSING_FIELDS: list[tuple[str, dict[str, Any] | None, dict[str, str], str]] = [
    ("POST /_matrix/client/v3/login", {}, {}, "M_UNKNOWN"),
    ("POST /_matrix/client/v3/login", {"type": "m.login.password", "password": "x"}, {}, ""),
    ("POST /_matrix/client/v3/login", {"type": "m.login.password", "user": "x"}, {}, ""),
    ("POST /_matrix/client/v3/refresh", {}, {}, "M_BAD_JSON"),
    ("POST /_matrix/client/v3/account/password", {}, {}, "M_BAD_JSON"),
    ("POST /_matrix/client/v3/delete_devices", {}, {}, "M_BAD_JSON"),
    ("PUT /_matrix/client/v3/profile/{user_id}/{key_name}", {}, {}, "M_MISSING_PARAM"),
    ("GET /_matrix/client/v3/register/available", None, {}, "M_MISSING_PARAM"),
    (
        "GET /_matrix/client/v1/register/m.login.registration_token/validity",
        None,
        {},
        "M_MISSING_PARAM",
    ),
]

FUZZ_BODIES: list[bytes] = [
    b"",
    b"null",
    b"true",
    b"-1e999",
    b'"text"',
    b"[]",
    b"{}",
    b'{"auth": {}}',
    b'{"auth": {"type": 5, "session": []}}',
    b'{"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": []},'
    b' "password": {}}}',
    b'{"auth": {"type": "m.login.password", "identifier": {"type": "m.id.thirdparty"}}}',
    b'{"auth": {"session": "' + b"s" * 10_000 + b'"}}',
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b"\xff\xfe\x00{",
    b'{"devices": ["' + b"A" * 5_000 + b'"], "display_name": "' + b"x" * 2_000 + b'"}',
    b'{"displayname": null, "avatar_url": 5, "m.tz": 7}',
    b'{"new_password": "' + b"x" * 600 + b'", "logout_devices": null}',
    b'{"username": "' + b"x" * 10_000 + b'", "password": "x", "device_id": ""}',
    b'{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@:"},'
    b' "password": ""}',
    b'{"type": "m.login.password", "user": "\\u0000", "password": "\\u0000",'
    b' "device_id": "\\u0000", "initial_device_display_name": ""}',
    b'{"refresh_token": true, "inhibit_login": null, "kind": "guest"}',
    b'{"k": 1e308, "n": -0, "big": 123456789012345678901234567890}',
]

PATH_VALUES = ["%00", "%FF", "a" * 4_000, "..", "%2F", "@:", "!:", "%F0%9F%92%A5", " "]


# The OAuth 2.0 endpoints (MSC3861: the server as its own authorization server) answer
# errors as the OAuth RFCs say ({"error": "invalid_request", ...}), and the pages a
# browser opens answer HTML.
OAUTH_PREFIX = "/oauth2/"
OAUTH_ERROR = re.compile(r"^[a-z_]+$")


def _check_oauth_error(response: httpx.Response, content_type: str) -> None:
    if content_type.startswith("text/html"):
        assert content_type.count("charset") <= 1, content_type
        return
    assert content_type.startswith("application/json"), content_type
    body = response.json()
    assert OAUTH_ERROR.match(body["error"]), body
    assert isinstance(body.get("error_description", ""), str), body


def expect_error(template: str, response: httpx.Response, status: int, errcode: str) -> None:
    """`expect`, but an OAuth 2.0 endpoint answers invalid_request where the Matrix API
    would answer `errcode` (api/errors.py shapes framework errors for them too)."""
    if template.startswith(OAUTH_PREFIX):
        assert response.status_code == status, response.text
        assert response.json()["error"] == "invalid_request", response.text
        return
    expect(response, status, errcode)


def _check_response(response: httpx.Response) -> None:
    """Every response: CORS headers, no server error, and errors in the Matrix shape."""
    assert response.headers.get("access-control-allow-origin") == "*", response.request.url
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url}: {response.status_code}"
    )
    if response.status_code >= 400 and response.request.method != "HEAD":
        response.read()
        content_type = response.headers["content-type"]
        if response.request.url.path.startswith(OAUTH_PREFIX):
            _check_oauth_error(response, content_type)
            return
        assert content_type.startswith("application/json")
        body = response.json()
        if response.status_code == 401 and "flows" in body and "errcode" not in body:
            return  # user-interactive auth asking for a stage: not an error body
        assert ERROR_BODY.match(body["errcode"]), body
        assert isinstance(body["error"], str), body


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(event_hooks={"response": [_check_response]}) as http:
        yield http


@pytest.fixture(scope="module")
def victim(client: httpx.Client) -> Iterator[User]:
    """The user whose token every request carries; nothing here may harm the account."""
    user = register_user(client, "victim")
    yield user
    # Nothing of the sweeps logged it out, deactivated it or changed its password.
    assert whoami(client, user.access_token)["user_id"] == user.user_id
    login(client, user.localpart)


@pytest.fixture(scope="module")
def other(client: httpx.Client) -> User:
    return register_user(client, "other")


def token_for(endpoint: Endpoint, client: httpx.Client, victim: User) -> str:
    """Logging out ends the token, so those endpoints get one of their own."""
    if endpoint.template.endswith("/logout/all"):
        return register_user(client, "throwaway").access_token
    if endpoint.template.endswith("/logout"):
        token: str = login(client, victim.localpart)["access_token"]
        return token
    return victim.access_token


def send(
    client: httpx.Client,
    endpoint: Endpoint,
    victim: User,
    *,
    content: bytes | None = None,
    json: Any = None,
    token: str | None = "victim",
    params: dict[str, str] | None = None,
    **path_values: str,
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token == "victim":
        token = token_for(endpoint, client, victim) if endpoint.auth else None
    if token is not None:
        headers.update(bearer(token))
    return client.request(
        endpoint.method,
        endpoint.path(victim, **path_values),
        content=content,
        json=json,
        headers=headers,
        params=QUERY if params is None else params,
    )


def by_id(endpoint_id: str) -> Endpoint:
    return next(e for e in ENDPOINTS if e.id == endpoint_id)


def test_the_sweep_covers_the_app() -> None:
    assert len(ENDPOINTS) >= 30
    assert {e.id for e in BODY_ENDPOINTS if e.foundation} == set(GOOD_BODIES)


# -- bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.id)
@pytest.mark.parametrize("content", [b'{"unterminated": ', b"{'single': 1}", b"\xff\xfe{}", b"{}x"])
def test_malformed_json(
    client: httpx.Client, victim: User, endpoint: Endpoint, content: bytes
) -> None:
    response = send(client, endpoint, victim, content=content)
    expect_error(endpoint.template, response, 400, "M_NOT_JSON")


@pytest.mark.parametrize(
    "endpoint", [e for e in BODY_ENDPOINTS if e.body_required], ids=lambda e: e.id
)
def test_missing_body(client: httpx.Client, victim: User, endpoint: Endpoint) -> None:
    response = send(client, endpoint, victim, content=b"")
    expect_error(endpoint.template, response, 400, "M_NOT_JSON")


@pytest.mark.parametrize(
    "endpoint",
    [e for e in BODY_ENDPOINTS if e.module not in EXTERNAL_MODE_MODULES],
    ids=lambda e: e.id,
)
@pytest.mark.parametrize("body", [[1, 2], "text", 5, True], ids=repr)
def test_body_not_an_object(
    client: httpx.Client, victim: User, endpoint: Endpoint, body: Any
) -> None:
    response = send(client, endpoint, victim, json=body)
    if endpoint.template.startswith(OAUTH_PREFIX):
        assert response.status_code == 400, response.text
        assert response.json()["error"] in ("invalid_request", "invalid_client_metadata")
        return
    expect(response, 400, "M_BAD_JSON")


@pytest.mark.parametrize(
    ("endpoint_id", "body"), WRONG_FIELD_TYPES, ids=[f"{e} {b}" for e, b in WRONG_FIELD_TYPES]
)
def test_field_of_the_wrong_type(
    client: httpx.Client, victim: User, endpoint_id: str, body: dict[str, Any]
) -> None:
    response = send(client, by_id(endpoint_id), victim, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), response.text


@pytest.mark.parametrize(
    ("endpoint_id", "body", "params", "errcode"),
    MISSING_FIELDS,
    ids=[f"{e} {b}" for e, b, _, _ in MISSING_FIELDS],
)
def test_missing_required_field(
    client: httpx.Client,
    victim: User,
    endpoint_id: str,
    body: dict[str, Any] | None,
    params: dict[str, str],
    errcode: str,
) -> None:
    response = send(client, by_id(endpoint_id), victim, json=body, params=params)
    expect(response, 400, errcode or None)
    assert response.json()["errcode"] in ("M_BAD_JSON", "M_MISSING_PARAM", "M_UNKNOWN")


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.id)
def test_oversized_body(client: httpx.Client, victim: User, endpoint: Endpoint) -> None:
    body = {**GOOD_BODIES.get(endpoint.id, {}), "padding": "a" * MAX_BODY}
    response = send(client, endpoint, victim, json=body)
    expect_error(endpoint.template, response, 413, "M_TOO_LARGE")


def test_oversized_chunked_body(client: httpx.Client, victim: User) -> None:
    """No Content-Length to go by: the limit holds while reading the stream."""

    def chunks() -> Iterator[bytes]:
        yield b'{"username": "' + unique("chunked").encode() + b'", "padding": "'
        for _ in range(20):
            yield b"a" * 65_536
        yield b'"}'

    response = client.post(
        f"{CS}/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    expect(response, 413, "M_TOO_LARGE")


def test_body_just_under_the_limit_is_read(client: httpx.Client, victim: User) -> None:
    endpoint = by_id("PUT /_matrix/client/v3/devices/{device_id}")
    name = "n" * 500
    prefix = b'{"display_name": "' + name.encode() + b'"'
    content = prefix + b" " * (MAX_BODY - len(prefix) - 1) + b"}"
    assert len(content) == MAX_BODY
    expect(send(client, endpoint, victim, content=content), 200)
    device = expect(client.get(f"{CS}/devices/{victim.device_id}", headers=victim.headers), 200)
    assert device["display_name"] == name


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/favicon.ico",
        f"{CS}/nope",
        f"{CS}/rooms/!room:localhost/no-such-thing",
        f"{CS}/devices/A/B",
        f"{CS}/profile",
        "/_matrix/client/r0/login",
        "/_matrix/client/unstable/org.example/thing",
        "/_matrix/federation/v1/version",
        "/_matrix/key/v2/server",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_endpoint(client: httpx.Client, victim: User, path: str, method: str) -> None:
    response = client.request(method, path, headers=victim.headers, json={})
    expect(response, 404, "M_UNRECOGNIZED")


def _wrong_methods() -> list[tuple[str, str]]:
    allowed: dict[str, set[str]] = {}
    for endpoint in ENDPOINTS:
        allowed.setdefault(endpoint.template, set()).add(endpoint.method)
    return [
        (method, template)
        for template, methods in sorted(allowed.items())
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH")
        if method not in methods
    ]


@pytest.mark.parametrize(("method", "template"), _wrong_methods())
def test_wrong_method(client: httpx.Client, victim: User, method: str, template: str) -> None:
    endpoint = Endpoint(method, template, "", auth=True, body=False, body_required=False)
    response = client.request(
        method, endpoint.path(victim), headers=victim.headers, json={}, params=QUERY
    )
    expect_error(template, response, 405, "M_UNRECOGNIZED")


# -- access tokens ---------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", AUTH_ENDPOINTS, ids=lambda e: e.id)
def test_missing_token(client: httpx.Client, victim: User, endpoint: Endpoint) -> None:
    body = GOOD_BODIES.get(endpoint.id, {})
    expect(send(client, endpoint, victim, json=body, token=None), 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("endpoint", AUTH_ENDPOINTS, ids=lambda e: e.id)
@pytest.mark.parametrize("token", ["dla_not-a-real-token", "x", "dlr_refresh-is-not-access"])
def test_unknown_token(client: httpx.Client, victim: User, endpoint: Endpoint, token: str) -> None:
    body = GOOD_BODIES.get(endpoint.id, {})
    response = send(client, endpoint, victim, json=body, token=token)
    assert expect(response, 401, "M_UNKNOWN_TOKEN")["soft_logout"] is False
    response = client.request(
        endpoint.method,
        endpoint.path(victim),
        json=body,
        params={**QUERY, "access_token": token},
    )
    expect(response, 401, "M_UNKNOWN_TOKEN")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "token", "Bearer a b"])
def test_malformed_authorization_header(client: httpx.Client, header: str) -> None:
    response = client.get(f"{CS}/account/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["errcode"] in ("M_MISSING_TOKEN", "M_UNKNOWN_TOKEN")


def test_refresh_token_is_not_an_access_token(client: httpx.Client, victim: User) -> None:
    refresh_token = login(client, victim.localpart, refresh_token=True)["refresh_token"]
    whoami(client, refresh_token, status=401, errcode="M_UNKNOWN_TOKEN")


# -- other users' data -----------------------------------------------------------------


def test_other_users_account_data_is_forbidden(
    client: httpx.Client, victim: User, other: User
) -> None:
    theirs = quote(other.user_id, safe="")
    room = quote("!room:localhost", safe="")
    paths = [
        f"{CS}/user/{theirs}/account_data/org.example.secret",
        f"{CS}/user/{theirs}/rooms/{room}/account_data/org.example.secret",
    ]
    for path in paths:
        expect(client.put(path, headers=other.headers, json={"mine": True}), 200)
        expect(client.get(path, headers=victim.headers), 403, "M_FORBIDDEN")
        expect(client.put(path, headers=victim.headers, json={"mine": False}), 403, "M_FORBIDDEN")
        assert expect(client.get(path, headers=other.headers), 200) == {"mine": True}


def test_other_users_profile_is_read_only(client: httpx.Client, victim: User, other: User) -> None:
    path = f"{CS}/profile/{quote(other.user_id, safe='')}/displayname"
    expect(
        client.put(path, headers=victim.headers, json={"displayname": "pwned"}), 403, "M_FORBIDDEN"
    )
    expect(client.delete(path, headers=victim.headers), 403, "M_FORBIDDEN")
    assert expect(client.get(path), 200) == {"displayname": other.localpart}


def test_profile_of_unknown_user(client: httpx.Client) -> None:
    expect(client.get(f"{CS}/profile/{quote(mxid(unique('ghost')))}"), 404, "M_NOT_FOUND")
    expect(client.get(f"{CS}/profile/not-a-user-id"), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("type_", ["m.fully_read", "m.push_rules"])
def test_server_managed_account_data(client: httpx.Client, victim: User, type_: str) -> None:
    path = f"{CS}/user/{quote(victim.user_id, safe='')}/account_data/{type_}"
    expect(client.put(path, headers=victim.headers, json={}), 405, "M_BAD_JSON")


def test_room_account_data_needs_a_room_id(client: httpx.Client, victim: User) -> None:
    path = f"{CS}/user/{quote(victim.user_id, safe='')}/rooms/not-a-room/account_data/x"
    expect(client.put(path, headers=victim.headers, json={}), 400, "M_INVALID_PARAM")
    expect(client.get(path, headers=victim.headers), 400, "M_INVALID_PARAM")


# -- nothing half-written --------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"password": "short"}, 400),
        ({"password": "x" * 600}, 400),
        ({"device_id": "D" * 300}, 400),
        ({"device_id": ""}, 400),
        ({"initial_device_display_name": "n" * 1001}, 400),
        ({"auth": {"type": "m.login.password", "password": PASSWORD}}, 401),
        ({"auth": {"type": "m.login.registration_token", "token": "x"}}, 401),
        ({"auth": {"type": "m.login.dummy", "session": "no-such-session"}}, 400),
        ({"auth": {"type": "m.login.dummy"}, "padding": "a" * MAX_BODY}, 413),
        ({"auth": {"type": "m.login.dummy"}, "inhibit_login": "no"}, 400),
    ],
    ids=lambda v: str(v)[:40],
)
def test_refused_registration_leaves_no_user(
    client: httpx.Client, extra: dict[str, Any], status: int
) -> None:
    localpart = unique("refused")
    response = client.post(f"{CS}/register", json={"username": localpart, **extra})
    assert response.status_code == status, response.text
    assert expect(username_available(client, localpart), 200) == {"available": True}
    login(client, localpart, status=403, errcode="M_FORBIDDEN")


def test_refused_account_data_keeps_the_old_value(client: httpx.Client, victim: User) -> None:
    path = f"{CS}/user/{quote(victim.user_id, safe='')}/account_data/org.example.kept"
    expect(client.put(path, headers=victim.headers, json={"v": 1}), 200)
    expect(client.put(path, headers=victim.headers, json=[1]), 400, "M_BAD_JSON")
    too_big = {"v": "x" * (65 * 1024)}
    expect(client.put(path, headers=victim.headers, json=too_big), 413, "M_TOO_LARGE")
    expect(
        client.put(
            path, headers={**victim.headers, "Content-Type": "application/json"}, content=b"{"
        ),
        400,
        "M_NOT_JSON",
    )
    assert expect(client.get(path, headers=victim.headers), 200) == {"v": 1}


def test_refused_profile_change_keeps_the_old_value(client: httpx.Client, victim: User) -> None:
    path = f"{CS}/profile/{quote(victim.user_id, safe='')}"
    expect(
        client.put(f"{path}/displayname", headers=victim.headers, json={"displayname": "Vic"}), 200
    )
    refusals = [
        ("displayname", {"displayname": 5}, "M_BAD_JSON"),
        ("displayname", {"displayname": "x" * 300}, "M_BAD_JSON"),
        ("avatar_url", {"avatar_url": "https://example.org/a.png"}, "M_BAD_JSON"),
        ("org.example.big", {"org.example.big": "x" * (65 * 1024)}, "M_PROFILE_TOO_LARGE"),
        ("Not-A-Key", {"Not-A-Key": 1}, "M_INVALID_PARAM"),
        ("k" * 300, {"k" * 300: 1}, "M_KEY_TOO_LARGE"),
    ]
    for key, body, errcode in refusals:
        expect(client.put(f"{path}/{key}", headers=victim.headers, json=body), 400, errcode)
    profile = expect(client.get(path), 200)
    assert profile == {"displayname": "Vic"}


# -- CORS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted({PARAM.sub("x", e.template) for e in ENDPOINTS} | {f"{CS}/nope", "/"}),
)
def test_cors_preflight(client: httpx.Client, path: str) -> None:
    response = client.options(
        path,
        headers={
            "Origin": "https://app.element.io",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == "*"
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= methods
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type", "x-requested-with"} <= allowed


def test_cors_on_ordinary_responses(client: httpx.Client, victim: User) -> None:
    # _check_response asserts it on every response of this module; these make sure
    # the successful, error and non-JSON kinds are all among them.
    for response in (
        client.get("/_matrix/client/versions"),
        client.get("/health"),
        client.get("/metrics"),
        client.get(f"{CS}/account/whoami", headers=victim.headers),
        client.get(f"{CS}/account/whoami"),
        client.get(f"{CS}/nope"),
    ):
        assert response.headers["access-control-allow-origin"] == "*"


# -- never a 500 -----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=lambda e: e.id)
def test_fuzzed_bodies_never_fail_the_server(
    client: httpx.Client, victim: User, endpoint: Endpoint
) -> None:
    for content in FUZZ_BODIES:
        response = send(client, endpoint, victim, content=content)
        assert response.status_code < 500, (content[:80], response.text)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.params], ids=lambda e: e.id)
def test_fuzzed_path_parameters_never_fail_the_server(
    client: httpx.Client, victim: User, endpoint: Endpoint
) -> None:
    body = GOOD_BODIES.get(endpoint.id)
    for param in endpoint.params:
        for value in PATH_VALUES:
            response = send(client, endpoint, victim, json=body, **{param: value})
            assert response.status_code < 500, (param, value[:40], response.text)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (f"{CS}/register/available", {"username": "%00"}),
        (f"{CS}/register/available", {"username": "a" * 10_000}),
        (f"{CS}/register/available", {"username": "💥"}),
        (f"{CS}/register/available", {"username": ""}),
        ("/_matrix/client/v1/register/m.login.registration_token/validity", {"token": ""}),
        ("/_matrix/client/v1/register/m.login.registration_token/validity", {"token": "💥" * 100}),
        (f"{CS}/account/whoami", {"access_token": ""}),
        (f"{CS}/account/whoami", {"access_token": "💥"}),
    ],
)
def test_fuzzed_query_parameters_never_fail_the_server(
    client: httpx.Client, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params)
    assert response.status_code < 500


@pytest.mark.parametrize("kind", ["guest", "user", "", "GUEST", "admin", "💥"])
def test_register_kind_never_fails_the_server(client: httpx.Client, kind: str) -> None:
    response = client.post(f"{CS}/register", params={"kind": kind}, json={})
    assert response.status_code in (400, 401, 403)


def test_every_endpoint_answers_its_happy_path(client: httpx.Client, victim: User) -> None:
    """The sweep's fixtures are sane: each endpoint, called properly, is not an error
    except where user-interactive auth asks for more (401 with flows)."""
    foundation = [e for e in ENDPOINTS if e.foundation]
    for endpoint in foundation:
        if endpoint.method == "PUT" and "account_data" in endpoint.template:
            send(client, endpoint, victim, json=GOOD_BODIES[endpoint.id])
    for endpoint in foundation:
        if endpoint.id in (
            "POST /_matrix/client/v3/logout",
            "POST /_matrix/client/v3/logout/all",
        ):
            continue
        response = send(client, endpoint, victim, json=GOOD_BODIES.get(endpoint.id))
        if endpoint.id == "POST /_matrix/client/v3/login":
            expect(response, 403, "M_FORBIDDEN")
        elif endpoint.id == "POST /_matrix/client/v3/refresh":
            expect(response, 401, "M_UNKNOWN_TOKEN")
        elif response.status_code == 401:
            assert "flows" in response.json(), (endpoint.id, response.text)
        elif endpoint.id == "GET /.well-known/matrix/server":
            expect(response, 404, "M_NOT_FOUND")
        else:
            assert response.status_code == 200, (endpoint.id, response.text)
