"""Mail delivery against real SMTP servers: TLS, AUTH, an SMTP server that is down.

The request that queues a mail never waits for SMTP; failures are retried with backoff
(and across a restart); a mail that finally cannot be sent is reported at the user's
next step. STARTTLS and implicit TLS use a self-signed certificate made by the test.
"""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import free_port
from tests.e2e.matrix import CS, expect, register_user
from tests.e2e.test_email_registration import email_overrides, new_address, request_token
from tests.unit.threepid.smtp_sink import SMTPSink

# aiosmtpd's own AUTH code touches a deprecated attribute of its session.
AIOSMTPD_AUTH = pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")


def overrides(port: int, **email: Any) -> dict[str, dict[str, Any]]:
    sink_like = type("Port", (), {"port": port})()
    return email_overrides(sink_like, **email)  # type: ignore[arg-type]


@AIOSMTPD_AUTH
def test_starttls_with_a_self_signed_certificate_and_login(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    sink = SMTPSink(mode="starttls", cert_dir=tmp_path, login=("mailer", "app-password"))
    sink.start()
    try:
        server = server_factory(
            overrides(
                sink.port,
                smtp_tls="starttls",
                smtp_ca_file=str(sink.ca_file),
                smtp_user="mailer",
                smtp_password="app-password",
            )
        )
        with server.client() as http:
            address = new_address().lower()
            request_token(http, "account/3pid", address, secrets.token_hex(8))
            mail = sink.wait_for(address)
            assert mail.subject.startswith("Add this email address")
            assert sink.logins == ["mailer"]
    finally:
        sink.stop()


def test_implicit_tls(server_factory: ServerFactory, tmp_path: Path) -> None:
    sink = SMTPSink(mode="implicit", cert_dir=tmp_path).start()
    try:
        server = server_factory(
            overrides(sink.port, smtp_tls="implicit", smtp_ca_file=str(sink.ca_file))
        )
        with server.client() as http:
            address = new_address().lower()
            request_token(http, "account/3pid", address, secrets.token_hex(8))
            assert sink.wait_for(address).subject.startswith("Add this email address")
    finally:
        sink.stop()


def test_smtp_down_the_request_answers_and_the_mail_is_retried_until_it_goes(
    server_factory: ServerFactory,
) -> None:
    port = free_port()  # nothing listens here yet
    server = server_factory(
        overrides(port, retry_first_delay_ms=200, retry_max_delay_ms=400, timeout_seconds=2.0)
    )
    with server.client() as http:
        address = new_address().lower()
        started = time.monotonic()
        request_token(http, "account/3pid", address, secrets.token_hex(8))
        assert time.monotonic() - started < 3.0
        time.sleep(0.6)  # a few failed attempts
        sink = SMTPSink(port).start()
        try:
            assert sink.wait_for(address).subject.startswith("Add this email address")
        finally:
            sink.stop()
    assert "retrying in" in server.log_tail(200)


def test_queued_mail_survives_a_restart(server_factory: ServerFactory) -> None:
    port = free_port()
    server = server_factory(
        overrides(port, retry_first_delay_ms=500, timeout_seconds=2.0), shared=False
    )
    with server.client() as http:
        address = new_address().lower()
        request_token(http, "account/3pid", address, secrets.token_hex(8))
    time.sleep(0.3)  # the first attempt fails: nothing listens on the port
    server.stop()
    sink = SMTPSink(port).start()
    try:
        server.start()  # a new process finds the pending row and sends it
        assert sink.wait_for(address).subject.startswith("Add this email address")
    finally:
        sink.stop()


def test_a_mail_that_cannot_be_sent_is_given_up_and_the_user_is_told(
    server_factory: ServerFactory,
) -> None:
    port = free_port()
    server = server_factory(
        overrides(
            port,
            retry_first_delay_ms=100,
            retry_max_delay_ms=200,
            give_up_after_ms=600,
            timeout_seconds=1.0,
        )
    )
    with server.client() as http:
        user = register_user(http)
        address, secret = new_address().lower(), secrets.token_hex(8)
        sid = request_token(http, "account/3pid", address, secret)["sid"]
        body = {"sid": sid, "client_secret": secret}
        deadline = time.monotonic() + 15
        while True:
            answer = expect(
                http.post(f"{CS}/account/3pid/add", json=body, headers=user.headers), 400
            )
            assert answer["errcode"] == "M_THREEPID_AUTH_FAILED"
            if "could not be delivered" in answer["error"]:
                break
            assert time.monotonic() < deadline, answer
            time.sleep(0.2)
        assert address in answer["error"]
        # Asking again (a higher send_attempt) queues a new mail.
        sink = SMTPSink(port).start()
        try:
            request_token(http, "account/3pid", address, secret, attempt=2)
            assert sink.wait_for(address).subject.startswith("Add this email address")
        finally:
            sink.stop()
    assert "gave up on mail to" in server.log_tail(400)
    assert address not in server.log_tail(400)  # addresses are redacted in logs


def test_an_untrusted_certificate_is_refused(server_factory: ServerFactory, tmp_path: Path) -> None:
    sink = SMTPSink(mode="starttls", cert_dir=tmp_path).start()
    try:
        server = server_factory(
            overrides(
                sink.port,
                smtp_tls="starttls",
                retry_first_delay_ms=100,
                give_up_after_ms=300,
                timeout_seconds=2.0,
            )
        )
        with server.client() as http:
            user = register_user(http)
            address, secret = new_address().lower(), secrets.token_hex(8)
            sid = request_token(http, "account/3pid", address, secret)["sid"]
            body = {"sid": sid, "client_secret": secret}
            deadline = time.monotonic() + 15
            while True:
                answer = expect(
                    http.post(f"{CS}/account/3pid/add", json=body, headers=user.headers), 400
                )
                if "could not be delivered" in answer["error"]:
                    break
                assert time.monotonic() < deadline, answer
                time.sleep(0.2)
            assert "certificate" in answer["error"].lower()
        assert sink.count(address) == 0
    finally:
        sink.stop()


def test_a_hanging_smtp_server_does_not_hold_up_requests(server_factory: ServerFactory) -> None:
    """An SMTP server that accepts connections and never greets: each send waits for
    timeout_seconds, in the background; requests keep answering at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(16)  # the kernel completes connections; nobody ever reads them
        server = server_factory(
            overrides(hanging.getsockname()[1], timeout_seconds=5.0, retry_first_delay_ms=100)
        )
        with server.client() as http:
            for _ in range(3):
                started = time.monotonic()
                request_token(http, "account/3pid", new_address(), secrets.token_hex(8))
                assert time.monotonic() - started < 2.5
            user = register_user(http)
            started = time.monotonic()
            expect(http.get(f"{CS}/account/3pid", headers=user.headers), 200)
            assert time.monotonic() - started < 2.5
        deadline = time.monotonic() + 20
        while "retrying in" not in server.log_tail(200):
            assert time.monotonic() < deadline, server.log_tail(50)
            time.sleep(0.2)
