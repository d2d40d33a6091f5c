"""Login and logout: https://spec.matrix.org/latest/client-server-api/#login"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import apsw

from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.auth.tokens import IssuedTokens, Requester, TokenService, new_device_id
from dendrite_lite.auth.uia import claimed_user
from dendrite_lite.clock import now_ms
from dendrite_lite.e2ee import device_lists
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.identifiers import local_user_id
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import devices, tokens, users
from dendrite_lite.storage.db import Database
from dendrite_lite.threepid.login import is_thirdparty_login, login_user
from dendrite_lite.types import DeviceId, UserId

PASSWORD_LOGIN = "m.login.password"
TOKEN_LOGIN = "m.login.token"


class SsoLogins(Protocol):
    """Legacy SSO through the OAuth pages (oauth/server.py): its flows and m.login.token."""

    @property
    def password_login(self) -> bool: ...

    @property
    def login_flows(self) -> list[dict[str, Any]]: ...

    async def take_login_token(self, login_token: str) -> UserId | None: ...


@dataclass(frozen=True)
class LoggedIn:
    user_id: UserId
    device_id: DeviceId
    tokens: IssuedTokens


class Login:
    def __init__(
        self,
        db: Database,
        server_name: str,
        passwords: Passwords,
        tokens: TokenService,
        per_ip: RateLimiter,
        failed_per_user: RateLimiter,
        notifier: Notifier | None = None,
    ) -> None:
        self.db = db
        self.server_name = server_name
        self.passwords = passwords
        self.tokens = tokens
        self.per_ip = per_ip
        self.failed_per_user = failed_per_user
        self.notifier = notifier
        self.sso: SsoLogins | None = None

    def configure_sso(self, sso: SsoLogins) -> None:
        self.sso = sso

    @property
    def flows(self) -> list[dict[str, Any]]:
        if self.sso is None:
            return [{"type": PASSWORD_LOGIN}]
        password = [{"type": PASSWORD_LOGIN}] if self.sso.password_login else []
        return password + self.sso.login_flows

    async def login(
        self,
        body: dict[str, Any],
        *,
        ip: str,
        device_id: str | None,
        device_display_name: str | None,
        refresh_token: bool,
    ) -> LoggedIn:
        login_type = body.get("type")
        if login_type == TOKEN_LOGIN and self.sso is not None and self.sso.login_flows:
            token = body.get("token")
            if not isinstance(token, str) or not token:
                raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing token")
            self.per_ip.check_and_spend(ip)
            token_user = await self.sso.take_login_token(token)
            if token_user is None:
                raise MatrixError(403, ErrCode.FORBIDDEN, "Invalid or expired login token")
            return await self._start_session(
                token_user, device_id, device_display_name, refresh_token
            )
        if login_type != PASSWORD_LOGIN or (self.sso is not None and not self.sso.password_login):
            raise MatrixError(400, ErrCode.UNKNOWN, f"Unknown login type {login_type!r}")
        self.per_ip.check_and_spend(ip)
        if is_thirdparty_login(body):  # an email address bound to the account
            claimed: str | None = await login_user(self.db, self.passwords, body)
        else:
            claimed = claimed_user(body)
        if claimed is None:
            raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing identifier")
        password = body.get("password")
        if not isinstance(password, str):
            raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing password")
        uid = local_user_id(claimed, self.server_name)
        if uid is None:
            raise MatrixError(403, ErrCode.FORBIDDEN, "Invalid username or password")
        self.failed_per_user.check(uid)
        row = await self.db.read(lambda conn: users.get(conn, uid))
        ok = await self.passwords.verify(row.password_hash if row else None, password)
        if row is None or not ok:
            self.failed_per_user.spend(uid)
            raise MatrixError(403, ErrCode.FORBIDDEN, "Invalid username or password")
        if row.deactivated:
            raise MatrixError(403, ErrCode.USER_DEACTIVATED, "This account has been deactivated")
        if row.locked:
            raise MatrixError(401, ErrCode.USER_LOCKED, "This account has been locked")
        return await self._start_session(uid, device_id, device_display_name, refresh_token)

    async def _start_session(
        self,
        uid: UserId,
        device_id: str | None,
        device_display_name: str | None,
        refresh_token: bool,
    ) -> LoggedIn:
        new_device = DeviceId(device_id) if device_id else new_device_id()

        def create_session(conn: apsw.Connection) -> LoggedIn:
            # A login that names an existing device takes it over: its old tokens end.
            tokens.revoke_device(conn, uid, new_device)
            devices.upsert(conn, uid, new_device, device_display_name, now_ms())
            issued = self.tokens.issue_in(conn, uid, new_device, with_refresh=refresh_token)
            return LoggedIn(uid, new_device, issued)

        return await self.db.write(create_session)

    async def logout(self, requester: Requester) -> None:
        """POST /logout: the token's device goes, and with it its tokens and keys."""
        await self._end_devices(requester.user_id, [requester.device_id])

    async def logout_all(self, requester: Requester) -> None:
        await self._end_devices(requester.user_id, None)

    async def _end_devices(self, user_id: str, device_ids: list[str] | None) -> None:
        def end_devices(conn: apsw.Connection) -> tuple[int | None, list[str]]:
            if device_ids is None:
                position = devices.delete_all(conn, user_id)
            else:
                position = devices.delete(conn, user_id, device_ids)
            # Devices that had keys change the user's device list for everyone who
            # shares a room with them: their syncs are woken.
            wake = device_lists.users_to_wake(conn, [(user_id, None)]) if position else []
            return position, wake

        position, wake = await self.db.write(end_devices)
        if position is not None and self.notifier is not None:
            self.notifier.notify(wake, position)
