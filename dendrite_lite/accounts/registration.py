"""Account registration: https://spec.matrix.org/latest/client-server-api/#account-registration-and-management"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

import apsw
import msgspec

from dendrite_lite.auth import uia as uia_stages
from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.auth.tokens import IssuedTokens, TokenService, new_device_id
from dendrite_lite.auth.uia import UserInteractiveAuth
from dendrite_lite.clock import now_ms
from dendrite_lite.config import RegistrationConfig
from dendrite_lite.errors import ErrCode, MatrixError, forbidden
from dendrite_lite.identifiers import check_new_localpart, user_id
from dendrite_lite.storage import devices, profiles, registration_tokens, users
from dendrite_lite.storage import threepid as threepid_store
from dendrite_lite.storage.db import Database
from dendrite_lite.threepid.sessions import ValidatedAddress, bind_validated
from dendrite_lite.types import DeviceId, UserId


@dataclass(frozen=True)
class Registered:
    user_id: UserId
    device_id: DeviceId | None
    tokens: IssuedTokens | None


@dataclass(frozen=True)
class RegisterRequest:
    username: str | None
    password: str | None
    device_id: str | None
    initial_device_display_name: str | None
    inhibit_login: bool
    refresh_token: bool
    auth: dict[str, Any] | None
    guest: bool


def check_password_strength(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise MatrixError(
            400, ErrCode.WEAK_PASSWORD, f"Password must be at least {min_length} characters"
        )
    if len(password) > 512:
        raise MatrixError(400, ErrCode.WEAK_PASSWORD, "Password is too long")


class Registration:
    def __init__(
        self,
        db: Database,
        config: RegistrationConfig,
        server_name: str,
        passwords: Passwords,
        tokens: TokenService,
        uia: UserInteractiveAuth,
        email_registration: Literal["off", "optional", "required"] = "off",
    ) -> None:
        self.db = db
        self.config = config
        self.email_registration = email_registration
        self.server_name = server_name
        self.passwords = passwords
        self.tokens = tokens
        self.uia = uia

    @property
    def flows(self) -> list[list[str]]:
        flows = self._flows_without_email()
        if self.email_registration == "off":
            return flows
        # [email] registration: the email stage in place of dummy ("required"), or a flow
        # with it beside each flow without it ("optional").
        with_email = [
            [s for s in flow if s != uia_stages.DUMMY] + [uia_stages.EMAIL_IDENTITY]
            for flow in flows
        ]
        return with_email if self.email_registration == "required" else flows + with_email

    def _flows_without_email(self) -> list[list[str]]:
        if self.config.require_token:
            # Synapse's shape (token, then dummy): clients such as matrix-nio rely on it,
            # and any client that follows the flows generically completes it too.
            return [[uia_stages.REGISTRATION_TOKEN, uia_stages.DUMMY]]
        if self.config.enabled:
            return [[uia_stages.DUMMY]]
        return []

    async def check_available(self, localpart: str) -> None:
        localpart = localpart.lower()
        check_new_localpart(localpart, self.server_name)
        uid = user_id(localpart, self.server_name)
        if await self.db.read(lambda conn: users.exists(conn, uid)):
            raise MatrixError(400, ErrCode.USER_IN_USE, "User ID already taken")

    async def register(self, request: RegisterRequest, *, uri: str) -> Registered:
        if request.guest:
            if not self.config.allow_guests:
                raise MatrixError(403, ErrCode.FORBIDDEN, "Guest access is disabled")
            return await self._create(
                UserId(user_id(_random_localpart(), self.server_name)),
                None,
                request,
                guest=True,
                token=None,
            )
        if not self.flows:
            raise forbidden("Registration has been disabled")
        if request.username is not None:
            await self.check_available(request.username)
        if request.password is not None:
            check_password_strength(request.password, self.passwords.min_length)
        outcome = await self.uia.authenticate(
            request.auth, flows=self.flows, method="POST", uri=uri
        )
        localpart = request.username.lower() if request.username else _random_localpart()
        password_hash = await self.passwords.hash(request.password) if request.password else None
        return await self._create(
            user_id(localpart, self.server_name),
            password_hash,
            request,
            guest=False,
            token=outcome.data.get("registration_token"),
            threepid=outcome.data.get("threepid"),
        )

    async def _create(
        self,
        uid: UserId,
        password_hash: str | None,
        request: RegisterRequest,
        *,
        guest: bool,
        token: str | None,
        threepid: dict[str, Any] | None = None,
    ) -> Registered:
        device_id = DeviceId(request.device_id) if request.device_id else new_device_id()
        localpart = uid[1:].split(":", 1)[0]

        def create_account(conn: apsw.Connection) -> Registered:
            now = now_ms()
            if token is not None and not registration_tokens.consume(conn, token, now):
                raise MatrixError(
                    401, ErrCode.UNAUTHORIZED, "Registration token is no longer valid"
                )
            if users.exists(conn, uid):
                raise MatrixError(400, ErrCode.USER_IN_USE, "User ID already taken")
            users.insert(conn, uid, password_hash, now, is_guest=guest)
            profiles.set_field(conn, uid, "displayname", _json_string(localpart))
            if threepid is not None:  # the m.login.email.identity stage's address
                bind_validated(conn, uid, ValidatedAddress.from_json(threepid), now)
            if request.inhibit_login:
                return Registered(uid, None, None)
            devices.upsert(conn, uid, device_id, request.initial_device_display_name, now)
            issued = self.tokens.issue_in(conn, uid, device_id, with_refresh=request.refresh_token)
            return Registered(uid, device_id, issued)

        return await self.db.write(create_account)


async def create_user(
    db: Database,
    passwords: Passwords,
    server_name: str,
    localpart: str,
    password: str | None,
    *,
    admin: bool = False,
    email: str | None = None,
) -> UserId:
    """Create an account outside of /register (the CLI and the admin API).

    `email` (canonical, see threepid/addresses.py) is bound as given: the operator
    vouches for it.
    """
    check_new_localpart(localpart, server_name)
    uid = user_id(localpart, server_name)
    password_hash = await passwords.hash(password) if password else None

    def create_account(conn: apsw.Connection) -> None:
        if users.exists(conn, uid):
            raise MatrixError(400, ErrCode.USER_IN_USE, f"{uid} already exists")
        now = now_ms()
        if email is not None and threepid_store.owner(conn, "email", email) is not None:
            raise MatrixError(400, ErrCode.THREEPID_IN_USE, f"{email} is already in use")
        users.insert(conn, uid, password_hash, now, is_admin=admin)
        profiles.set_field(conn, uid, "displayname", _json_string(localpart))
        if email is not None:
            threepid_store.bind(conn, uid, "email", email, now, now)

    await db.write(create_account)
    return uid


def _random_localpart() -> str:
    # Numeric, like the IDs other servers hand to guests and name-less registrations.
    return str(secrets.randbelow(10**12))


def _json_string(value: str) -> bytes:
    return msgspec.json.encode(value)
