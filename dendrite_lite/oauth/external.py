"""External-MAS mode (auth.mode = "external"): tokens come from another OAuth 2.0 server,
typically matrix-authentication-service, as Synapse's MSC3861 delegation does.

Each access token is checked by RFC 7662 introspection at the configured issuer (the
answer cached briefly), and its user and device are provisioned here on first sight:
the username claim names the local user, the urn:matrix:client:device:<id> scope the
device, urn:synapse:admin:* makes the requester an admin.
"""

from __future__ import annotations

import time
from typing import Any

import apsw

from dendrite_lite.auth.tokens import Requester, token_digest
from dendrite_lite.clock import now_ms
from dendrite_lite.config import ExternalAuthConfig
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.identifiers import check_new_localpart, user_id
from dendrite_lite.oauth.scopes import API_SCOPES, DEVICE_PREFIXES
from dendrite_lite.storage import devices, users
from dendrite_lite.storage.db import Database
from dendrite_lite.types import DeviceId, UserId

ADMIN_SCOPES = frozenset({"urn:synapse:admin:*"})
_CACHE_MAX = 10_000
_TIMEOUT_S = 10.0


def _unknown_token(message: str = "Unrecognised access token") -> MatrixError:
    return MatrixError(401, ErrCode.UNKNOWN_TOKEN, message, soft_logout=False)


class ExternalAuth:
    def __init__(self, db: Database, config: ExternalAuthConfig, server_name: str) -> None:
        self.db = db
        self.config = config
        self.server_name = server_name
        self.issuer = config.issuer.rstrip("/")
        self.endpoint = config.introspection_endpoint or self.issuer + "/oauth2/introspect"
        self._cache: dict[bytes, tuple[float, Requester]] = {}
        self._provisioned: set[tuple[str, str]] = set()
        self._metadata: dict[str, Any] | None = None

    async def authenticate(self, token: str) -> Requester:
        digest = token_digest(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        answer = await self._introspect(token)
        requester, ttl_s = await self._requester(answer, digest)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + ttl_s, requester)
        return requester

    async def _introspect(self, token: str) -> dict[str, Any]:
        import httpx  # only external mode needs an HTTP client at all

        headers = {"Accept": "application/json"}
        auth: Any = httpx.USE_CLIENT_DEFAULT
        if self.config.client_id:  # client_secret_basic, as Synapse's msc3861 mode does
            auth = (self.config.client_id, self.config.client_secret)
        else:  # the shared secret, as Synapse's matrix_authentication_service mode does
            headers["Authorization"] = f"Bearer {self.config.secret}"
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
                response = await client.post(
                    self.endpoint,
                    data={"token": token, "token_type_hint": "access_token"},
                    auth=auth,
                    headers=headers,
                )
        except httpx.HTTPError:
            raise MatrixError(
                503, ErrCode.UNKNOWN, "The authorization server is unreachable"
            ) from None
        if response.status_code != 200:
            raise MatrixError(
                503, ErrCode.UNKNOWN, "The authorization server refused introspection"
            )
        try:
            answer = response.json()
        except ValueError:
            raise MatrixError(503, ErrCode.UNKNOWN, "Bad introspection answer") from None
        if not isinstance(answer, dict):
            raise MatrixError(503, ErrCode.UNKNOWN, "Bad introspection answer")
        return answer

    async def _requester(self, answer: dict[str, Any], digest: bytes) -> tuple[Requester, float]:
        if answer.get("active") is not True:
            raise _unknown_token()
        scope = answer.get("scope")
        scopes = set(scope.split(" ")) if isinstance(scope, str) else set()
        if not scopes & API_SCOPES:
            raise MatrixError(403, ErrCode.FORBIDDEN, "The token lacks the Matrix API scope")
        username = answer.get("username")
        if not isinstance(username, str):
            raise _unknown_token("The token names no user")
        try:
            check_new_localpart(username, self.server_name)
        except MatrixError:
            raise _unknown_token("The token's username is not a valid localpart") from None
        uid = user_id(username, self.server_name)
        device = next((s[len(p) :] for s in scopes for p in DEVICE_PREFIXES if s.startswith(p)), "")
        exp = answer.get("exp")
        ttl_s = self.config.cache_ms / 1000
        if isinstance(exp, int):
            ttl_s = min(ttl_s, exp - time.time())
            if ttl_s <= 0:
                raise _unknown_token("Access token has expired")
        deactivated = await self._provision(uid, DeviceId(device))
        if deactivated:
            raise _unknown_token("This account has been deactivated")
        requester = Requester(uid, DeviceId(device), False, bool(scopes & ADMIN_SCOPES), digest)
        return requester, ttl_s

    async def _provision(self, uid: UserId, device: DeviceId) -> bool:
        """Create the user and device on first sight; True when the user is deactivated."""
        if (uid, device) in self._provisioned:
            return False

        def provision(conn: apsw.Connection) -> bool:
            row = users.get(conn, uid)
            if row is None:
                users.insert(conn, uid, None, now_ms())
            elif row.deactivated:
                return True
            if device:
                devices.upsert(conn, uid, device, None, now_ms())
            return False

        deactivated = await self.db.write(provision)
        if not deactivated:
            self._provisioned.add((uid, device))
        return deactivated

    async def metadata(self) -> dict[str, Any]:
        """The issuer's own discovery document, advertised as ours (MSC2965)."""
        if self._metadata is None:
            import httpx

            url = self.issuer + "/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
                    response = await client.get(url)
                document = response.json()
            except (httpx.HTTPError, ValueError):
                raise MatrixError(503, ErrCode.UNKNOWN, "The issuer is unreachable") from None
            if response.status_code != 200 or not isinstance(document, dict):
                raise MatrixError(503, ErrCode.UNKNOWN, "The issuer has no metadata")
            if self.config.account_management_url:
                document["account_management_uri"] = self.config.account_management_url
            self._metadata = document
        return self._metadata
