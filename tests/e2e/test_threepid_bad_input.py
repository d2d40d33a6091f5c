"""Bad input to the 3PID endpoints: clear Matrix errors, nothing half-done.

Invalid addresses and secrets, wrong client_secret or sid, reused and expired tokens,
next_link with other schemes, send_attempt semantics, and the rate limits.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import CS, expect, register_user
from tests.e2e.test_email_registration import email_overrides, new_address, request_token
from tests.unit.threepid.smtp_sink import SMTPSink, shared_sink

SUBMIT = "/_dendrite/client/email/submit_token"


@pytest.fixture(scope="module")
def sink() -> SMTPSink:
    return shared_sink()


@pytest.fixture(scope="module")
def email_server(server_factory: ServerFactory, sink: SMTPSink) -> Server:
    return server_factory(email_overrides(sink, next_link_hosts=["app.example.org"]))


@pytest.fixture(scope="module")
def client(email_server: Server) -> Iterator[httpx.Client]:
    with email_server.client() as http:
        yield http


def link_fields(sink: SMTPSink, address: str, skip: int = 0) -> dict[str, str]:
    link = sink.wait_for(address, skip=skip).link()
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def post_token(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    return http.post(f"{CS}/{path}/email/requestToken", json=body)


@pytest.mark.parametrize(
    "address",
    [
        "no-at-sign",
        "two@@example.org",
        "a@b@example.org",
        "@example.org",
        "user@",
        "user@localhost",
        "user@-bad-.org",
        "us er@example.org",
        "user@exa mple.org",
        "user\r\nBcc: victim@example.org@example.org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 250 + ".org",
        ".dot@example.org",
        "dot..dot@example.org",
    ],
)
def test_invalid_addresses_are_m_invalid_param(client: httpx.Client, address: str) -> None:
    body = {"client_secret": "secret", "email": address, "send_attempt": 1}
    expect(post_token(client, "account/3pid", body), 400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (
            {"client_secret": "has space", "email": "a@example.org", "send_attempt": 1},
            "M_INVALID_PARAM",
        ),
        ({"client_secret": "", "email": "a@example.org", "send_attempt": 1}, "M_INVALID_PARAM"),
        (
            {"client_secret": "x" * 256, "email": "a@example.org", "send_attempt": 1},
            "M_INVALID_PARAM",
        ),
        ({"client_secret": "ok", "email": "a@example.org", "send_attempt": -1}, "M_INVALID_PARAM"),
        ({"client_secret": "ok", "email": "a@example.org", "send_attempt": "1"}, "M_BAD_JSON"),
        ({"client_secret": "ok", "email": "a@example.org", "send_attempt": 1.5}, "M_BAD_JSON"),
        ({"client_secret": "ok", "email": "a@example.org", "send_attempt": True}, "M_BAD_JSON"),
        ({"client_secret": "ok", "email": 5, "send_attempt": 1}, "M_BAD_JSON"),
        ({"email": "a@example.org", "send_attempt": 1}, "M_BAD_JSON"),
        ({"client_secret": "ok", "send_attempt": 1}, "M_BAD_JSON"),
        ([], "M_BAD_JSON"),
    ],
)
def test_malformed_request_token_bodies(client: httpx.Client, body: Any, errcode: str) -> None:
    for path in ("account/3pid", "account/password"):
        expect(post_token(client, path, body), 400, errcode)


def test_not_json_is_m_not_json(client: httpx.Client) -> None:
    response = client.post(
        f"{CS}/account/3pid/email/requestToken",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    expect(response, 400, "M_NOT_JSON")


@pytest.mark.parametrize(
    "next_link",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://app.example.org/x",
        "//app.example.org/x",
        "/relative/path",
        "https://evil.example.net/phish",
        'https://app.example.org/"><script>',
    ],
)
def test_next_link_must_be_http_on_an_allowed_host(client: httpx.Client, next_link: str) -> None:
    body = {"client_secret": "ok", "email": "a@example.org", "send_attempt": 1}
    body["next_link"] = next_link
    expect(post_token(client, "account/3pid", body), 400, "M_INVALID_PARAM")


def test_same_send_attempt_sends_no_new_mail_and_a_higher_one_replaces_the_token(
    client: httpx.Client, sink: SMTPSink
) -> None:
    address, secret = new_address().lower(), secrets.token_hex(8)
    first = request_token(client, "account/3pid", address, secret, attempt=1)
    old = link_fields(sink, address)
    assert request_token(client, "account/3pid", address, secret, attempt=1) == first
    assert request_token(client, "account/3pid", address, secret, attempt=0) == first
    time.sleep(0.5)
    assert sink.count(address) == 1

    second = request_token(client, "account/3pid", address, secret, attempt=2)
    assert second["sid"] == first["sid"]
    new = link_fields(sink, address, skip=1)
    assert new["token"] != old["token"]
    expect(client.post(SUBMIT, json=old), 400, "M_TOKEN_INCORRECT")
    assert expect(client.post(SUBMIT, json=new), 200) == {"success": True}

    # A different client_secret is a different session.
    other = request_token(client, "account/3pid", address, secrets.token_hex(8))
    assert other["sid"] != first["sid"]


def test_wrong_client_secret_wrong_sid_and_wrong_token(
    client: httpx.Client, sink: SMTPSink
) -> None:
    address, secret = new_address().lower(), secrets.token_hex(8)
    request_token(client, "account/3pid", address, secret)
    fields = link_fields(sink, address)
    expect(client.post(SUBMIT, json={**fields, "client_secret": "wrong"}), 400, "M_INVALID_PARAM")
    expect(client.post(SUBMIT, json={**fields, "sid": "nosuchsid"}), 400, "M_INVALID_PARAM")
    expect(client.post(SUBMIT, json={**fields, "token": "guess"}), 400, "M_TOKEN_INCORRECT")
    expect(client.post(SUBMIT, json={**fields, "sid": "bad sid!"}), 400, "M_INVALID_PARAM")
    expect(client.post(SUBMIT, json={"sid": "x"}), 400, "M_BAD_JSON")
    bad = client.post(SUBMIT, content=b"{", headers={"Content-Type": "application/json"})
    expect(bad, 400, "M_NOT_JSON")

    # The page for a wrong secret says so, in HTML, and changes nothing.
    page = client.get(SUBMIT, params={**fields, "client_secret": "wrong"})
    assert page.status_code == 400 and "does not work" in page.text
    form = client.post(SUBMIT, params={**fields, "token": "guess"})
    assert form.status_code == 400 and "incorrect" in form.text

    # The right token still works after all that, once.
    assert expect(client.post(SUBMIT, json=fields), 200) == {"success": True}
    reused = expect(client.post(SUBMIT, json=fields), 400, "M_TOKEN_INCORRECT")
    assert "already been used" in reused["error"]
    page = client.get(SUBMIT, params=fields)
    assert page.status_code == 200 and "Already confirmed" in page.text


def test_3pid_add_with_a_wrong_secret_or_sid_is_refused_before_auth(
    client: httpx.Client, sink: SMTPSink
) -> None:
    user = register_user(client)
    address, secret = new_address().lower(), secrets.token_hex(8)
    sid = request_token(client, "account/3pid", address, secret)["sid"]
    add = f"{CS}/account/3pid/add"
    for body in (
        {"sid": sid, "client_secret": "wrong"},
        {"sid": "nosuchsid", "client_secret": secret},
        {"sid": sid, "client_secret": secret},  # not validated yet
    ):
        expect(client.post(add, json=body, headers=user.headers), 400, "M_THREEPID_AUTH_FAILED")
    expect(
        client.post(add, json={"sid": "bad sid", "client_secret": secret}, headers=user.headers),
        400,
        "M_INVALID_PARAM",
    )
    expect(client.post(add, json={"sid": sid}, headers=user.headers), 400, "M_BAD_JSON")
    # A session validated for registration or reset cannot add an address.
    reset_secret = secrets.token_hex(8)
    reset_sid = request_token(client, "account/password", address, reset_secret)["sid"]
    body = {"sid": reset_sid, "client_secret": reset_secret}
    expect(client.post(add, json=body, headers=user.headers), 400, "M_THREEPID_AUTH_FAILED")
    listed = expect(client.get(f"{CS}/account/3pid", headers=user.headers), 200)
    assert listed == {"threepids": []}


def test_expired_links_and_sessions(server_factory: ServerFactory, sink: SMTPSink) -> None:
    server = server_factory(email_overrides(sink, token_lifetime_ms=1000))
    with server.client() as http:
        address, secret = new_address().lower(), secrets.token_hex(8)
        request_token(http, "account/3pid", address, secret)
        fields = link_fields(sink, address)
        time.sleep(1.2)
        expired = expect(http.post(SUBMIT, json=fields), 400, "M_SESSION_EXPIRED")
        assert "expired" in expired["error"]


def test_rate_limits_per_ip_and_per_address(server_factory: ServerFactory, sink: SMTPSink) -> None:
    server = server_factory(
        {
            **email_overrides(sink, request_token_burst=4, per_address_burst=2),
            "rate_limits": {"enabled": True},
        }
    )
    with server.client() as http:
        address = new_address().lower()
        for attempt in (1, 2):
            request_token(http, "account/3pid", address, "secret", attempt=attempt)
        limited = expect(
            post_token(
                http,
                "account/3pid",
                {"client_secret": "secret", "email": address, "send_attempt": 3},
            ),
            429,
            "M_LIMIT_EXCEEDED",
        )
        assert limited["retry_after_ms"] > 0
        request_token(http, "account/3pid", new_address(), "secret")
        body = {"client_secret": "secret", "email": new_address(), "send_attempt": 1}
        expect(post_token(http, "account/3pid", body), 429, "M_LIMIT_EXCEEDED")
    sink.wait_for(address)
    # The third attempt queued nothing (a second may replace a first not yet sent).
    time.sleep(0.3)
    assert sink.count(address) in (1, 2)


def test_email_stage_with_bad_creds(client: httpx.Client) -> None:
    body = {"new_password": "a long enough password"}
    state = expect(client.post(f"{CS}/account/password", json=body), 401)
    for auth in (
        {"type": "m.login.email.identity"},
        {"type": "m.login.email.identity", "threepid_creds": "x"},
        {"type": "m.login.email.identity", "threepid_creds": {"sid": 1, "client_secret": "a"}},
        {"type": "m.login.email.identity", "threepid_creds": {"sid": "a", "client_secret": "b"}},
    ):
        answer = expect(
            client.post(
                f"{CS}/account/password",
                json={**body, "auth": {**auth, "session": state["session"]}},
            ),
            401,
        )
        assert answer["errcode"] in ("M_MISSING_PARAM", "M_THREEPID_AUTH_FAILED"), answer
    weak = expect(client.post(f"{CS}/account/password", json={"new_password": "x"}), 400)
    assert weak["errcode"] == "M_WEAK_PASSWORD"
