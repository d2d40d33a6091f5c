"""A real SMTP server for the tests: aiosmtpd on a loopback port, keeping what it receives.

Shared by the email unit, CLI and end-to-end tests. Plain, STARTTLS (with a self-signed
certificate made here with `cryptography`) and implicit TLS, optionally with AUTH.
"""

from __future__ import annotations

import atexit
import datetime
import email
import email.policy
import gc
import ipaddress
import re
import ssl
import threading
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.harness import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def words(self) -> str:
        """The plain text with its line breaks folded, for phrase checks."""
        return " ".join(self.text.split())

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    def link(self) -> str:
        """The validation link in the plain-text part."""
        found = re.search(r"https?://\S+submit_token\?\S+", self.text)
        assert found, self.text
        return found.group(0)


class _Handler:
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.sink.cond:
            self.sink.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message)
            )
            self.sink.cond.notify_all()
        return "250 OK"


class SMTPSink:
    """Start with `start()`; `wait_for(address)` returns the next mail to an address."""

    def __init__(
        self,
        port: int | None = None,
        *,
        mode: str = "none",
        cert_dir: Path | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.mode = mode
        self.received: list[Received] = []
        self.cond = threading.Condition()
        self.ca_file: Path | None = None
        self.logins: list[str] = []
        kwargs: dict[str, Any] = {}
        if mode != "none":
            assert cert_dir is not None
            cert, key = make_self_signed(cert_dir)
            self.ca_file = cert
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            if mode == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs.update(ssl_context=context)
        if login is not None:
            expected = (login[0].encode(), login[1].encode())

            def authenticate(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login, data.password) == expected
                if ok:
                    self.logins.append(data.login.decode())
                return AuthResult(success=ok)

            kwargs.update(authenticator=authenticate, auth_required=True)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> SMTPSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        # aiosmtpd leaves an implicit-TLS server transport for the garbage collector;
        # collect it here, where its ResourceWarning is known and harmless.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()

    def wait_for(self, address: str, timeout: float = 20.0, skip: int = 0) -> Received:
        """The (skip+1)-th mail to `address`, waiting for it to arrive."""

        def found() -> list[Received]:
            return [r for r in self.received if address in r.recipients]

        with self.cond:
            if not self.cond.wait_for(lambda: len(found()) > skip, timeout=timeout):
                raise AssertionError(f"no mail to {address} within {timeout}s")
            return found()[skip]

    def count(self, address: str) -> int:
        with self.cond:
            return sum(1 for r in self.received if address in r.recipients)


_shared: SMTPSink | None = None


def shared_sink() -> SMTPSink:
    """One plain SMTP server for the whole test run: test servers configured with it are
    equal, so the server factory shares them between modules."""
    global _shared
    if _shared is None:
        _shared = SMTPSink().start()
        atexit.register(_shared.stop)
    return _shared


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
