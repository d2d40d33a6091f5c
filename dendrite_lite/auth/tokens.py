"""Access and refresh tokens: https://spec.matrix.org/latest/client-server-api/#client-authentication

Tokens are 256 random bits; the database keeps only their SHA-256, so a leaked backup
holds no usable token, and a lookup by digest never compares secrets byte by byte.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

import apsw

from dendrite_lite.auth.token_cache import AccessTokenCache
from dendrite_lite.clock import now_ms
from dendrite_lite.config import AuthConfig
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage import tokens
from dendrite_lite.storage.db import Database, arrival_key
from dendrite_lite.types import DeviceId, UserId

ACCESS_PREFIX = "dla_"
REFRESH_PREFIX = "dlr_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def new_device_id() -> DeviceId:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return DeviceId("".join(secrets.choice(alphabet) for _ in range(10)))


@dataclass(frozen=True)
class Requester:
    """Who is making a request, once their access token checked out."""

    user_id: UserId
    device_id: DeviceId
    is_guest: bool
    is_admin: bool
    token_hash: bytes


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None


class ExternalTokens(Protocol):
    """auth.mode = "external": tokens checked by introspection (oauth/external.py)."""

    async def authenticate(self, token: str) -> Requester: ...


class TokenService:
    def __init__(self, db: Database, config: AuthConfig) -> None:
        self.db = db
        self.config = config
        self.external: ExternalTokens | None = None
        self.cache: AccessTokenCache[tokens.AccessTokenRow] = AccessTokenCache()
        db.add_commit_listener(self.cache.after_commit)

    # -- issuing (runs inside the caller's write unit) ----------------------------------

    def issue_in(
        self,
        conn: apsw.Connection,
        user_id: UserId,
        device_id: DeviceId,
        *,
        with_refresh: bool,
        replaces_refresh_id: int | None = None,
    ) -> IssuedTokens:
        now = now_ms()
        access = new_token(ACCESS_PREFIX)
        if not with_refresh:
            tokens.insert_access(conn, token_digest(access), user_id, device_id, now, None)
            return IssuedTokens(access, None, None)
        refresh = new_token(REFRESH_PREFIX)
        lifetime = self.config.refresh_token_lifetime_ms
        refresh_id = tokens.insert_refresh(
            conn,
            token_digest(refresh),
            user_id,
            device_id,
            now,
            now + lifetime if lifetime else None,
        )
        expires_in = self.config.access_token_lifetime_ms
        tokens.insert_access(
            conn,
            token_digest(access),
            user_id,
            device_id,
            now,
            now + expires_in,
            refresh_token_id=refresh_id,
            replaces_refresh_id=replaces_refresh_id,
        )
        return IssuedTokens(access, refresh, expires_in)

    # -- checking ----------------------------------------------------------------------

    async def authenticate(self, token: str) -> Requester:
        if self.external is not None:
            requester = await self.external.authenticate(token)
        else:
            requester = await self._authenticate(token)
        # The rest of this request's reads and writes are this client's: the database
        # keeps their order with its other requests' (storage/db.py, arrival order).
        arrival_key.set(f"{requester.user_id}|{requester.device_id}")
        return requester

    async def _authenticate(self, token: str) -> Requester:
        digest = token_digest(token)
        row = self.cache.get(digest)
        if row is None:
            generation = self.cache.generation
            row = await self.db.read(lambda conn: tokens.lookup_access(conn, digest))
            # A pair's first use writes (confirm_rotation below): never skip that.
            if row is not None and row.replaces_refresh_id is None:
                self.cache.put(digest, row, generation)
        if row is None or row.deactivated:
            raise MatrixError(
                401, ErrCode.UNKNOWN_TOKEN, "Unrecognised access token", soft_logout=False
            )
        if row.expires_ts is not None and row.expires_ts <= now_ms():
            # An expired token of a refreshing client: it should refresh, not log out.
            raise MatrixError(
                401, ErrCode.UNKNOWN_TOKEN, "Access token has expired", soft_logout=True
            )
        if row.locked:
            raise MatrixError(
                401, ErrCode.USER_LOCKED, "This account has been locked", soft_logout=True
            )
        if row.replaces_refresh_id is not None:
            old = row.replaces_refresh_id

            def confirm_rotation(conn: apsw.Connection) -> None:
                tokens.confirm_rotation(conn, digest, old)

            await self.db.write(confirm_rotation)
        return Requester(row.user_id, row.device_id, row.is_guest, row.is_admin, digest)

    # -- refreshing ----------------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """POST /refresh: a new pair; the old refresh token lives until the new pair is used."""
        digest = token_digest(refresh_token)

        def rotate(conn: apsw.Connection) -> IssuedTokens:
            row = tokens.lookup_refresh(conn, digest)
            if row is None:
                raise MatrixError(
                    401, ErrCode.UNKNOWN_TOKEN, "Unknown refresh token", soft_logout=False
                )
            if row.expires_ts is not None and row.expires_ts <= now_ms():
                tokens.delete_refresh(conn, row.id)
                raise MatrixError(
                    401, ErrCode.UNKNOWN_TOKEN, "Refresh token has expired", soft_logout=False
                )
            return self.rotate_in(conn, row)

        return await self.db.write(rotate)

    def rotate_in(self, conn: apsw.Connection, row: tokens.RefreshTokenRow) -> IssuedTokens:
        """A new pair for a live refresh token (shared by /refresh and OAuth's token endpoint)."""
        # Using the new refresh token, like using the new access token, revokes the
        # refresh token it replaced (spec: "until the new access token or refresh
        # token is used").
        tokens.confirm_refresh_use(conn, row.id)
        # Tokens issued by earlier uses of this same refresh token, never used, are
        # superseded by this answer.
        conn.execute(
            "DELETE FROM refresh_tokens WHERE id IN (SELECT refresh_token_id FROM access_tokens"
            " WHERE replaces_refresh_id = ?)",
            (row.id,),
        )
        conn.execute("DELETE FROM access_tokens WHERE replaces_refresh_id = ?", (row.id,))
        return self.issue_in(
            conn, row.user_id, row.device_id, with_refresh=True, replaces_refresh_id=row.id
        )
