"""Email validation sessions: requestToken, the mailed link, and proof for later steps.

https://spec.matrix.org/latest/client-server-api/#adding-account-administrative-contact-information

A session is named by client_secret + address + purpose (register, password, add); a
repeated requestToken with a send_attempt no higher than the last one answers the same
sid without mailing again. The mail carries a link to our own page (SUBMIT_PATH) with a
random single-use token, stored only as its hash, that expires after token_lifetime_ms;
the same URL, POSTed as JSON, is the spec's `submit_url`. A validated session proves the
address for session_lifetime_ms and is consumed by the step it was for.

No account enumeration: requestToken answers the same way whether or not an address
belongs to an account. Where the spec would have us refuse (an address already in use
for register/add, an unknown one for password reset) we mail the address's owner a
notice instead, as the spec recommends, and the session can never validate.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import apsw

from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.clock import now_ms
from dendrite_lite.config import EmailConfig
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage import email_queue, threepid
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.threepid import ValidationSessionRow
from dendrite_lite.threepid.addresses import (
    EMAIL,
    MEDIUM_NOT_SUPPORTED,
    canonical_email,
    check_next_link,
    check_opaque,
    check_send_attempt,
    hash_token,
    invalid,
)
from dendrite_lite.threepid.queue import EmailQueue
from dendrite_lite.threepid.templates import EmailTemplates

REGISTER = "register"
PASSWORD = "password"
ADD = "add"
SUBMIT_PATH = "/_dendrite/client/email/submit_token"

# The Identity Service API's submitToken errors (spec v1.18).
TOKEN_INCORRECT = "M_TOKEN_INCORRECT"
SESSION_EXPIRED = "M_SESSION_EXPIRED"


@dataclass(frozen=True)
class RequestedToken:
    sid: str
    submit_url: str


@dataclass(frozen=True)
class ValidatedAddress:
    """A session whose address was proved; `sid` is consumed by whatever uses it."""

    sid: str
    medium: str
    address: str
    validated_ts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "medium": self.medium,
            "address": self.address,
            "validated_ts": self.validated_ts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ValidatedAddress:
        return cls(
            str(data["sid"]), str(data["medium"]), str(data["address"]), int(data["validated_ts"])
        )


def purpose_of_uri(uri: str) -> str | None:
    """Which session an m.login.email.identity stage must prove, by the UIA endpoint."""
    if uri.endswith("/register"):
        return REGISTER
    if uri.endswith("/account/password"):
        return PASSWORD
    return None


def consume(conn: apsw.Connection, proof: ValidatedAddress) -> None:
    """Inside the write unit that uses the proof: it works once."""
    row = threepid.get_session(conn, proof.sid)
    if row is None or row.validated_ts is None:
        raise MatrixError(
            400, ErrCode.THREEPID_AUTH_FAILED, "This email validation has already been used"
        )
    threepid.delete_session(conn, proof.sid)


def bind_validated(conn: apsw.Connection, user_id: str, proof: ValidatedAddress, now: int) -> None:
    """Inside a write unit: give the proved address to `user_id` and use up the proof."""
    owner = threepid.owner(conn, proof.medium, proof.address)
    if owner is not None and owner != user_id:
        raise MatrixError(400, ErrCode.THREEPID_IN_USE, "This email address is already in use")
    consume(conn, proof)
    if owner is None:
        threepid.bind(conn, user_id, proof.medium, proof.address, proof.validated_ts, now)


class ValidationSessions:
    def __init__(
        self,
        db: Database,
        config: EmailConfig,
        server_name: str,
        base_url: str,
        templates: EmailTemplates,
        queue: EmailQueue,
        per_ip: RateLimiter,
        per_address: RateLimiter,
    ) -> None:
        self.db = db
        self.config = config
        self.server_name = server_name
        self.base_url = base_url.rstrip("/")
        self.templates = templates
        self.queue = queue
        self.per_ip = per_ip
        self.per_address = per_address

    @property
    def submit_url(self) -> str:
        return self.base_url + SUBMIT_PATH

    def require_email(self) -> None:
        if not self.config.enabled:
            raise MatrixError(400, MEDIUM_NOT_SUPPORTED, "This server does not send email")

    async def request_token(
        self,
        purpose: str,
        client_secret: str,
        email: str,
        send_attempt: int,
        next_link: str | None,
        ip: str,
    ) -> RequestedToken:
        """Start (or repeat) a validation; the mail is queued, never sent inline."""
        self.require_email()
        check_opaque(client_secret, "client_secret")
        address = canonical_email(email)
        check_send_attempt(send_attempt)
        link_after = check_next_link(next_link, self.config.next_link_hosts)
        self.per_ip.check_and_spend(ip)
        self.per_address.check(address)
        token = secrets.token_urlsafe(32)
        new_sid = secrets.token_urlsafe(18)
        now = now_ms()
        config = self.config

        def start(conn: apsw.Connection) -> tuple[str, bool]:
            threepid.delete_sessions_older_than(conn, now - config.session_lifetime_ms)
            existing = threepid.find_session(conn, client_secret, EMAIL, address, purpose)
            if existing is not None and send_attempt <= existing.send_attempt:
                return existing.sid, False
            owner = threepid.owner(conn, EMAIL, address)
            kind = _mail_kind(purpose, owner is not None)
            token_hash = hash_token(token) if kind == purpose else None
            expires = now + config.token_lifetime_ms
            sid = existing.sid if existing is not None else new_sid
            if existing is not None:
                threepid.renew_token(conn, sid, send_attempt, link_after, token_hash, expires)
                email_queue.drop_for_session(conn, sid)
            else:
                threepid.insert_session(
                    conn,
                    ValidationSessionRow(
                        sid,
                        purpose,
                        EMAIL,
                        address,
                        client_secret,
                        send_attempt,
                        link_after,
                        token_hash,
                        expires,
                        now,
                        None,
                        None,
                    ),
                )
            query = urlencode({"sid": sid, "client_secret": client_secret, "token": token})
            mail = self.templates.render(
                kind,
                server_name=self.server_name,
                address=address,
                link=f"{self.submit_url}?{query}",
                lifetime=_duration(config.token_lifetime_ms),
            )
            email_queue.enqueue(conn, address, mail.subject, mail.text, mail.html, sid, now)
            return sid, True

        sid, mailed = await self.db.write(start)
        if mailed:
            self.per_address.spend(address)
            self.queue.wake()
        return RequestedToken(sid, self.submit_url)

    async def peek(self, sid: str, client_secret: str) -> ValidationSessionRow:
        """The session a link names (for the confirmation page); changes nothing."""
        check_opaque(sid, "sid")
        check_opaque(client_secret, "client_secret")
        row = await self.db.read(lambda conn: threepid.get_session(conn, sid))
        if row is None or not hmac.compare_digest(row.client_secret, client_secret):
            raise invalid("Unknown validation session")
        return row

    async def submit_token(self, sid: str, client_secret: str, token: str) -> ValidationSessionRow:
        """The token from the mail: validates the session, once."""
        check_opaque(sid, "sid")
        check_opaque(client_secret, "client_secret")
        if not 0 < len(token) <= 255:
            raise invalid("Invalid token")
        presented = hash_token(token)
        now = now_ms()
        lifetime = self.config.session_lifetime_ms

        def validate(conn: apsw.Connection) -> ValidationSessionRow:
            row = threepid.get_session(conn, sid)
            if row is None or not hmac.compare_digest(row.client_secret, client_secret):
                raise invalid("Unknown validation session")
            if row.created_ts + lifetime < now:
                raise MatrixError(400, SESSION_EXPIRED, "This validation session has expired")
            if row.token_hash is None or not hmac.compare_digest(row.token_hash, presented):
                message = (
                    "This link has already been used"
                    if row.validated_ts is not None
                    else "The token is incorrect"
                )
                raise MatrixError(400, TOKEN_INCORRECT, message)
            if row.token_expires_ts < now:
                raise MatrixError(
                    400, SESSION_EXPIRED, "This link has expired; ask for a new email"
                )
            threepid.mark_validated(conn, sid, now)
            return row

        return await self.db.write(validate)

    async def validated(self, sid: str, client_secret: str, purpose: str) -> ValidatedAddress:
        """Proof that the session's address was validated for `purpose`, or why not."""
        check_opaque(sid, "sid")
        check_opaque(client_secret, "client_secret")
        row = await self.db.read(lambda conn: threepid.get_session(conn, sid))
        if (
            row is None
            or not hmac.compare_digest(row.client_secret, client_secret)
            or row.purpose != purpose
            or row.created_ts + self.config.session_lifetime_ms < now_ms()
        ):
            raise MatrixError(400, ErrCode.THREEPID_AUTH_FAILED, "No such email validation session")
        if row.validated_ts is None:
            if row.send_error is not None:
                raise MatrixError(
                    400,
                    ErrCode.THREEPID_AUTH_FAILED,
                    f"The email to {row.address} could not be delivered ({row.send_error}); "
                    "check the address or ask for a new email",
                )
            raise MatrixError(
                400,
                ErrCode.THREEPID_AUTH_FAILED,
                f"The email address {row.address} has not been validated yet: "
                "open the link in the email we sent",
            )
        return ValidatedAddress(row.sid, row.medium, row.address, row.validated_ts)

    async def uia_stage(self, auth: Mapping[str, Any], uri: str) -> dict[str, Any]:
        """m.login.email.identity: threepid_creds name a validated session."""
        purpose = purpose_of_uri(uri)
        if purpose is None or not self.config.enabled:
            raise MatrixError(400, ErrCode.UNRECOGNIZED, "Email is not offered here")
        creds = auth.get("threepid_creds", auth.get("threepidCreds"))
        if not isinstance(creds, dict):
            raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing threepid_creds")
        sid, client_secret = creds.get("sid"), creds.get("client_secret")
        if not isinstance(sid, str) or not isinstance(client_secret, str):
            raise MatrixError(
                400, ErrCode.MISSING_PARAM, "threepid_creds needs sid and client_secret"
            )
        proof = await self.validated(sid, client_secret, purpose)
        return {"threepid": proof.to_json()}


def _mail_kind(purpose: str, address_in_use: bool) -> str:
    """The template to mail; only a mail named after the purpose carries a token."""
    if purpose == PASSWORD:
        return PASSWORD if address_in_use else "no_account"
    return "in_use" if address_in_use else purpose


def _duration(ms: int) -> str:
    minutes = max(1, ms // 60_000)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
