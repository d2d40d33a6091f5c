"""User-interactive authentication: https://spec.matrix.org/latest/client-server-api/#user-interactive-authentication-api

One engine for every endpoint that needs it (/register, /account/password,
/account/deactivate, device deletion, cross-signing upload). The endpoint says which
flows it accepts; the engine keeps the session, runs the stages and raises
`UIARequired` (401 with flows, params, session, completed) until one flow is complete.

Sessions are bound to the method and path that started them, so a session completed
for one operation cannot authorise another, and they are single use.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError, UIARequired
from dendrite_lite.identifiers import local_user_id
from dendrite_lite.storage import registration_tokens, uia, users
from dendrite_lite.storage.db import Database
from dendrite_lite.types import UserId

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"
REGISTRATION_TOKEN = "m.login.registration_token"
EMAIL_IDENTITY = "m.login.email.identity"


@dataclass(frozen=True)
class UIAOutcome:
    """What the completed stages established (e.g. which registration token was used)."""

    session_id: str
    data: dict[str, Any] = field(default_factory=dict)


class UserInteractiveAuth:
    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        server_name: str,
        session_lifetime_ms: int,
        failed_password_limiter: RateLimiter,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.server_name = server_name
        self.session_lifetime_ms = session_lifetime_ms
        self.failed_password_limiter = failed_password_limiter
        # m.login.email.identity, checked by threepid/sessions.py (given the endpoint's
        # URI, which says what the address must have been validated for).
        self.email_identity: (
            Callable[[Mapping[str, Any], str], Awaitable[dict[str, Any]]] | None
        ) = None

    async def authenticate(
        self,
        auth: Mapping[str, Any] | None,
        *,
        flows: list[list[str]],
        method: str,
        uri: str,
        user_id: UserId | None = None,
        params: dict[str, Any] | None = None,
    ) -> UIAOutcome:
        """Run one round of UIA; returns once a flow is complete, else raises UIARequired.

        `user_id` is the account being acted on when the requester is known: a password
        stage must then prove that very account.
        """
        params = params or {}
        session_id = auth.get("session") if auth else None
        if session_id is not None and not isinstance(session_id, str):
            raise MatrixError(400, ErrCode.BAD_JSON, "auth.session must be a string")
        if session_id is None:
            session_id = await self._new_session(method, uri)
            if not auth or "type" not in auth:
                raise UIARequired(_body(flows, params, session_id, []))
        row = await self.db.read(lambda conn: uia.get(conn, session_id))
        if row is None or row.created_ts + self.session_lifetime_ms < now_ms():
            raise MatrixError(400, ErrCode.UNKNOWN, "Unknown or expired auth session")
        if row.method != method or row.uri != uri:
            raise MatrixError(
                403,
                ErrCode.FORBIDDEN,
                "Requested operation has changed during the UI authentication session",
            )
        completed: list[str] = msgspec.json.decode(row.completed)
        data: dict[str, Any] = msgspec.json.decode(row.data)
        if row.user_id is not None and user_id is not None and row.user_id != user_id:
            raise MatrixError(403, ErrCode.FORBIDDEN, "This session belongs to another user")

        stage = auth.get("type") if auth else None
        if stage is not None:
            if not isinstance(stage, str):
                raise MatrixError(400, ErrCode.BAD_JSON, "auth.type must be a string")
            allowed = {s for flow in flows for s in flow}
            if stage not in allowed:
                raise UIARequired(
                    _body(flows, params, session_id, completed),
                    ErrCode.UNRECOGNIZED,
                    f"Authentication stage {stage} is not offered here",
                )
            assert auth is not None
            try:
                if stage == EMAIL_IDENTITY and self.email_identity is not None:
                    result = await self.email_identity(auth, uri)
                else:
                    result = await self._run_stage(stage, auth, user_id)
            except MatrixError as exc:
                raise UIARequired(
                    _body(flows, params, session_id, completed), exc.errcode, exc.message
                ) from None
            if stage not in completed:
                completed.append(stage)
            data.update(result)

        if any(set(flow) <= set(completed) for flow in flows):

            def finish(conn: apsw.Connection) -> None:
                uia.delete(conn, session_id)

            await self.db.write(finish)
            return UIAOutcome(session_id, data)

        completed_json = msgspec.json.encode(completed)
        data_json = msgspec.json.encode(data)

        def save(conn: apsw.Connection) -> None:
            uia.update(conn, session_id, user_id, completed_json, data_json)

        await self.db.write(save)
        raise UIARequired(_body(flows, params, session_id, completed))

    async def _new_session(self, method: str, uri: str) -> str:
        session_id = secrets.token_urlsafe(24)
        created = now_ms()
        cutoff = created - self.session_lifetime_ms

        def start(conn: apsw.Connection) -> None:
            uia.delete_older_than(conn, cutoff)
            uia.insert(conn, session_id, created, method, uri)

        await self.db.write(start)
        return session_id

    async def _run_stage(
        self, stage: str, auth: Mapping[str, Any], user_id: UserId | None
    ) -> dict[str, Any]:
        if stage == DUMMY:
            return {}
        if stage == PASSWORD:
            return await self._password_stage(auth, user_id)
        if stage == REGISTRATION_TOKEN:
            token = auth.get("token")
            if not isinstance(token, str) or not token:
                raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing registration token")
            row = await self.db.read(lambda conn: registration_tokens.get(conn, token))
            if row is None or not row.is_valid(now_ms()):
                raise MatrixError(401, ErrCode.UNAUTHORIZED, "Invalid registration token")
            return {"registration_token": token}
        raise MatrixError(400, ErrCode.UNRECOGNIZED, f"Unknown auth stage {stage}")

    async def _password_stage(
        self, auth: Mapping[str, Any], user_id: UserId | None
    ) -> dict[str, Any]:
        password = auth.get("password")
        if not isinstance(password, str):
            raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing password")
        claimed = claimed_user(auth)
        target = local_user_id(claimed, self.server_name) if claimed else user_id
        if target is None or (user_id is not None and target != user_id):
            raise MatrixError(403, ErrCode.FORBIDDEN, "Invalid username or password")
        self.failed_password_limiter.check(target)
        row = await self.db.read(lambda conn: users.get(conn, target))
        if row is None or row.deactivated or row.password_hash is None:
            await self.passwords.verify(None, password)
            self.failed_password_limiter.spend(target)
            raise MatrixError(403, ErrCode.FORBIDDEN, "Invalid username or password")
        if not await self.passwords.verify(row.password_hash, password):
            self.failed_password_limiter.spend(target)
            raise MatrixError(403, ErrCode.FORBIDDEN, "Invalid username or password")
        return {"user_id": target}


def claimed_user(auth: Mapping[str, Any]) -> str | None:
    """The user named by an `identifier` of type m.id.user, or the legacy `user` field."""
    identifier = auth.get("identifier")
    if isinstance(identifier, dict):
        if identifier.get("type") != "m.id.user":
            raise MatrixError(400, ErrCode.UNRECOGNIZED, "Only m.id.user identifiers are supported")
        value = identifier.get("user")
        if not isinstance(value, str):
            raise MatrixError(400, ErrCode.BAD_JSON, "identifier.user must be a string")
        return value
    if identifier is not None:
        raise MatrixError(400, ErrCode.BAD_JSON, "identifier must be an object")
    legacy = auth.get("user")
    if legacy is not None and not isinstance(legacy, str):
        raise MatrixError(400, ErrCode.BAD_JSON, "user must be a string")
    return legacy


def _body(
    flows: list[list[str]], params: dict[str, Any], session_id: str, completed: list[str]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "flows": [{"stages": flow} for flow in flows],
        "params": params,
        "session": session_id,
    }
    if completed:
        body["completed"] = completed
    return body
