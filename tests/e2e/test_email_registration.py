"""Registration with an email address (m.login.email.identity), end to end.

A real SMTP server (aiosmtpd on loopback) receives the mail; the test reads the real
message, follows its link over HTTP like a person with a browser, and completes
registration as a client would. Then the address logs in (m.id.thirdparty).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import CS, PASSWORD, bearer, expect, unique
from tests.unit.threepid.smtp_sink import SMTPSink, shared_sink

EMAIL_STAGE = "m.login.email.identity"


@pytest.fixture(scope="module")
def sink() -> SMTPSink:
    return shared_sink()


def email_overrides(sink: SMTPSink, **extra: Any) -> dict[str, dict[str, Any]]:
    return {
        "email": {
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_tls": "none",
            "from": "Home Matrix <matrix@example.org>",
            **extra,
        }
    }


@pytest.fixture(scope="module")
def email_server(server_factory: ServerFactory, sink: SMTPSink) -> Server:
    return server_factory(email_overrides(sink, registration="required"))


@pytest.fixture(scope="module")
def client(email_server: Server) -> Iterator[httpx.Client]:
    with email_server.client() as http:
        yield http


def new_address() -> str:
    return f"{unique('mail')}@Example.org"


def request_token(
    http: httpx.Client, path: str, address: str, secret: str, attempt: int = 1, **extra: Any
) -> Any:
    body = {"client_secret": secret, "email": address, "send_attempt": attempt, **extra}
    return expect(http.post(f"{CS}/{path}/email/requestToken", json=body), 200)


def follow_link(http: httpx.Client, link: str) -> httpx.Response:
    """What a person does: open the link (a page with a button), press the button."""
    parts = urlsplit(link)
    page = http.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200, page.text
    assert "<form" in page.text
    action = page.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return http.post(action, data={})


def test_registration_requires_the_email_stage_and_completes_through_the_mailed_link(
    client: httpx.Client, sink: SMTPSink
) -> None:
    opening = expect(client.post(f"{CS}/register", json={}), 401)
    assert opening["flows"] == [{"stages": [EMAIL_STAGE]}]

    address, secret = new_address(), secrets.token_hex(8)
    answer = request_token(client, "register", address, secret)
    assert answer["sid"] and answer["submit_url"].endswith("/_dendrite/client/email/submit_token")

    mail = sink.wait_for(address.lower())
    assert mail.subject == "Confirm your email address for localhost"
    assert mail.message["From"] == "Home Matrix <matrix@example.org>"
    assert mail.message.get_body(("html",)) is not None
    link = mail.link()
    assert parse_qs(urlsplit(link).query)["sid"] == [answer["sid"]]
    assert link in mail.html.replace("&amp;", "&")

    # Not validated yet: the stage says so, and the session stays usable.
    username = unique("emailreg")
    body = {"username": username, "password": PASSWORD}
    session = expect(client.post(f"{CS}/register", json=body), 401)["session"]
    creds = {"sid": answer["sid"], "client_secret": secret}
    auth = {"type": EMAIL_STAGE, "threepid_creds": creds, "session": session}
    early = expect(client.post(f"{CS}/register", json={**body, "auth": auth}), 401)
    assert early["errcode"] == "M_THREEPID_AUTH_FAILED"
    assert "not been validated" in early["error"]

    done = follow_link(client, link)
    assert done.status_code == 200 and "confirmed" in done.text

    registered = expect(client.post(f"{CS}/register", json={**body, "auth": auth}), 200)
    assert registered["user_id"] == f"@{username}:localhost"
    threepids = expect(
        client.get(f"{CS}/account/3pid", headers=bearer(registered["access_token"])), 200
    )["threepids"]
    assert [(t["medium"], t["address"]) for t in threepids] == [("email", address.lower())]
    assert threepids[0]["validated_at"] <= threepids[0]["added_at"]

    # The address logs in (any case), with the password.
    login = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address.upper()},
        "password": PASSWORD,
    }
    assert expect(client.post(f"{CS}/login", json=login), 200)["user_id"] == registered["user_id"]
    wrong = {**login, "password": "not the password"}
    expect(client.post(f"{CS}/login", json=wrong), 403, "M_FORBIDDEN")

    # The validated session was used up: it cannot make a second account.
    other = {"username": unique("emailreg"), "password": PASSWORD}
    session2 = expect(client.post(f"{CS}/register", json=other), 401)["session"]
    again = {**auth, "session": session2}
    reused = expect(client.post(f"{CS}/register", json={**other, "auth": again}), 401)
    assert reused["errcode"] == "M_THREEPID_AUTH_FAILED"


def test_an_address_in_use_gets_a_notice_not_a_link_and_the_answer_does_not_differ(
    client: httpx.Client, sink: SMTPSink, email_server: Server
) -> None:
    address = new_address().lower()
    email_server.cli("user", "add", unique("owner"), "--password", PASSWORD, "--email", address)
    answer = request_token(client, "register", address, secrets.token_hex(8))
    assert set(answer) == {"sid", "submit_url"}  # as for a free address
    mail = sink.wait_for(address)
    assert "already belongs to an account" in mail.words
    assert "submit_token" not in mail.text


def test_next_link_receives_the_person_after_validation(
    client: httpx.Client, sink: SMTPSink
) -> None:
    address, secret = new_address().lower(), secrets.token_hex(8)
    request_token(client, "register", address, secret, next_link="https://app.example.org/done")
    response = follow_link(client, sink.wait_for(address).link())
    assert response.status_code == 303
    assert response.headers["location"] == "https://app.example.org/done"


def test_optional_email_offers_both_flows_and_open_registration_still_works(
    server_factory: ServerFactory, sink: SMTPSink
) -> None:
    server = server_factory(email_overrides(sink, registration="optional"))
    with server.client() as http:
        flows = expect(http.post(f"{CS}/register", json={}), 401)["flows"]
        assert flows == [{"stages": ["m.login.dummy"]}, {"stages": [EMAIL_STAGE]}]


def test_email_registration_off_refuses_register_request_token(
    server_factory: ServerFactory, sink: SMTPSink
) -> None:
    server = server_factory(email_overrides(sink))
    with server.client() as http:
        body = {"client_secret": "abc", "email": "a@example.org", "send_attempt": 1}
        expect(http.post(f"{CS}/register/email/requestToken", json=body), 403, "M_FORBIDDEN")
        flows = expect(http.post(f"{CS}/register", json={}), 401)["flows"]
        assert flows == [{"stages": ["m.login.dummy"]}]
