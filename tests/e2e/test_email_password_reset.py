"""Forgotten password: reset through an email link, end to end with matrix-nio.

The account is made by the CLI with `--email`; its devices are matrix-nio clients. The
reset mail arrives at a real SMTP server; the link is followed over HTTP; the new
password is set with POST /account/password and no access token, as a client's "forgot
password" screen does.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import httpx
import pytest
from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiResponse

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import CS, PASSWORD, bearer, expect, mxid, unique
from tests.e2e.test_email_registration import (
    EMAIL_STAGE,
    email_overrides,
    follow_link,
    new_address,
    request_token,
)
from tests.unit.threepid.smtp_sink import SMTPSink, shared_sink

CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def sink() -> SMTPSink:
    return shared_sink()


@pytest.fixture(scope="module")
def email_server(server_factory: ServerFactory, sink: SMTPSink) -> Server:
    return server_factory(email_overrides(sink))


@pytest.fixture(scope="module")
def client(email_server: Server) -> Iterator[httpx.Client]:
    with email_server.client() as http:
        yield http


def make_account(server: Server) -> tuple[str, str]:
    localpart, address = unique("reset"), new_address().lower()
    server.cli("user", "add", localpart, "--password", PASSWORD, "--email", address)
    return localpart, address


async def nio_login(server: Server, localpart: str, password: str) -> AsyncClient:
    client = AsyncClient(server.url, user=localpart, config=CONFIG)
    response = await client.login(password, device_name="nio")
    assert isinstance(response, LoginResponse), response
    return client


def validated_reset_session(http: httpx.Client, sink: SMTPSink, address: str) -> dict[str, str]:
    secret = secrets.token_hex(8)
    earlier = sink.count(address)
    sid = request_token(http, "account/password", address, secret)["sid"]
    mail = sink.wait_for(address, skip=earlier)
    assert mail.subject == "Reset your password on localhost"
    assert follow_link(http, mail.link()).status_code == 200
    return {"sid": sid, "client_secret": secret}


async def validated_reset_session_async(
    server: Server, sink: SMTPSink, address: str
) -> dict[str, str]:
    """The mail round trip (blocking HTTP and SMTP waits) off the event loop."""

    def run() -> dict[str, str]:
        with server.client() as http:
            return validated_reset_session(http, sink, address)

    return await asyncio.to_thread(run)


async def test_reset_without_a_token_logs_out_every_device(
    sink: SMTPSink, email_server: Server
) -> None:
    localpart, address = make_account(email_server)
    phone = await nio_login(email_server, localpart, PASSWORD)
    laptop = await nio_login(email_server, localpart, PASSWORD)
    client = httpx.AsyncClient(base_url=email_server.url, timeout=30.0)
    try:
        creds = await validated_reset_session_async(email_server, sink, address)
        body = {"new_password": NEW_PASSWORD}
        state = expect(await client.post(f"{CS}/account/password", json=body), 401)
        assert state["flows"] == [{"stages": [EMAIL_STAGE]}]
        auth = {"type": EMAIL_STAGE, "threepid_creds": creds, "session": state["session"]}
        expect(await client.post(f"{CS}/account/password", json={**body, "auth": auth}), 200)

        for device in (phone, laptop):
            gone = await device.whoami()
            assert not isinstance(gone, WhoamiResponse)
            assert gone.status_code == "M_UNKNOWN_TOKEN"
        stranger = AsyncClient(email_server.url, user=localpart, config=CONFIG)
        refused = await stranger.login(PASSWORD)
        await stranger.close()
        assert not isinstance(refused, LoginResponse)
        fresh = await nio_login(email_server, localpart, NEW_PASSWORD)
        me = await fresh.whoami()
        assert isinstance(me, WhoamiResponse) and me.user_id == mxid(localpart)
        await fresh.close()

        # The validation was used up: it cannot reset the password again.
        again = expect(await client.post(f"{CS}/account/password", json=body), 401)
        auth = {"type": EMAIL_STAGE, "threepid_creds": creds, "session": again["session"]}
        reused = expect(
            await client.post(f"{CS}/account/password", json={**body, "auth": auth}), 401
        )
        assert reused["errcode"] == "M_THREEPID_AUTH_FAILED"
    finally:
        await client.aclose()
        await phone.close()
        await laptop.close()


async def test_reset_from_a_signed_in_device_can_keep_the_other_devices(
    sink: SMTPSink, email_server: Server
) -> None:
    localpart, address = make_account(email_server)
    phone = await nio_login(email_server, localpart, PASSWORD)
    laptop = await nio_login(email_server, localpart, PASSWORD)
    client = httpx.AsyncClient(base_url=email_server.url, timeout=30.0)
    try:
        creds = await validated_reset_session_async(email_server, sink, address)
        body = {"new_password": NEW_PASSWORD, "logout_devices": False}
        headers = bearer(phone.access_token)
        state = expect(await client.post(f"{CS}/account/password", json=body, headers=headers), 401)
        assert state["flows"] == [{"stages": ["m.login.password"]}, {"stages": [EMAIL_STAGE]}]
        auth = {"type": EMAIL_STAGE, "threepid_creds": creds, "session": state["session"]}
        expect(
            await client.post(
                f"{CS}/account/password", json={**body, "auth": auth}, headers=headers
            ),
            200,
        )
        for device in (phone, laptop):
            assert isinstance(await device.whoami(), WhoamiResponse)
    finally:
        await client.aclose()
        await phone.close()
        await laptop.close()


def test_an_address_proves_only_its_own_account(
    client: httpx.Client, sink: SMTPSink, email_server: Server
) -> None:
    _, victim_address = make_account(email_server)
    attacker, _ = make_account(email_server)
    token = expect(
        client.post(
            f"{CS}/login",
            json={"type": "m.login.password", "user": attacker, "password": PASSWORD},
        ),
        200,
    )["access_token"]
    creds = validated_reset_session(client, sink, victim_address)
    body = {"new_password": NEW_PASSWORD}
    headers = bearer(token)
    state = expect(client.post(f"{CS}/account/password", json=body, headers=headers), 401)
    auth = {"type": EMAIL_STAGE, "threepid_creds": creds, "session": state["session"]}
    expect(
        client.post(f"{CS}/account/password", json={**body, "auth": auth}, headers=headers),
        403,
        "M_FORBIDDEN",
    )


def test_an_unknown_address_gets_a_notice_and_the_same_answer(
    client: httpx.Client, sink: SMTPSink
) -> None:
    address, secret = new_address().lower(), secrets.token_hex(8)
    answer = request_token(client, "account/password", address, secret)
    assert set(answer) == {"sid", "submit_url"}
    mail = sink.wait_for(address)
    assert "no account there uses this address" in mail.words
    assert "submit_token" not in mail.text
    body = {"new_password": NEW_PASSWORD}
    state = expect(client.post(f"{CS}/account/password", json=body), 401)
    creds = {"sid": answer["sid"], "client_secret": secret}
    auth = {"type": EMAIL_STAGE, "threepid_creds": creds, "session": state["session"]}
    failed = expect(client.post(f"{CS}/account/password", json={**body, "auth": auth}), 401)
    assert failed["errcode"] == "M_THREEPID_AUTH_FAILED"


def test_without_email_a_password_change_still_needs_a_token(server: Server) -> None:
    with server.client() as http:
        expect(
            http.post(f"{CS}/account/password", json={"new_password": NEW_PASSWORD}),
            401,
            "M_MISSING_TOKEN",
        )
        body = {"client_secret": "abc", "email": "a@example.org", "send_attempt": 1}
        expect(
            http.post(f"{CS}/account/password/email/requestToken", json=body),
            400,
            "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        )
