"""The built-in OAuth 2.0 authorization server: the spec's OAuth 2.0 API
(https://spec.matrix.org/latest/client-server-api/#oauth-20-api; MSC2964, MSC2965,
MSC2966, MSC2967, MSC4254).

Tokens it issues are the server's ordinary access and refresh tokens (auth/tokens.py),
bound to the device named by the urn:matrix:client:device scope, so every endpoint
accepts them. An OAuth session *is* that device: revoking a token, reusing a rotated
refresh token or signing the device out ends the device, and the grant with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import apsw
import msgspec

from dendrite_lite.accounts.login import Login
from dendrite_lite.accounts.registration import check_password_strength
from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.auth.tokens import IssuedTokens, Requester, TokenService, token_digest
from dendrite_lite.clock import now_ms
from dendrite_lite.config import Config
from dendrite_lite.e2ee import device_lists
from dendrite_lite.errors import ErrCode, MatrixError, UIARequired
from dendrite_lite.identifiers import check_new_localpart, local_user_id, user_id
from dendrite_lite.notifier import Notifier
from dendrite_lite.oauth import clients
from dendrite_lite.oauth.clients import ClientMetadata
from dendrite_lite.oauth.device_grant import DeviceGrant
from dendrite_lite.oauth.errors import OAuthError, invalid_grant, invalid_request
from dendrite_lite.oauth.external import ExternalAuth
from dendrite_lite.oauth.scopes import parse_scope
from dendrite_lite.storage import devices, oauth, profiles, tokens, users
from dendrite_lite.storage.db import Database
from dendrite_lite.types import DeviceId, UserId

if TYPE_CHECKING:
    from dendrite_lite.oauth.upstream import UpstreamProviders

AUTHORIZE_PATH = "/oauth2/authorize"
TOKEN_PATH = "/oauth2/token"
REGISTRATION_PATH = "/oauth2/registration"
REVOCATION_PATH = "/oauth2/revoke"
ACCOUNT_PATH = "/account/"
DEVICE_AUTHORIZATION_PATH = "/oauth2/device"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PENDING_LIFETIME_MS = 30 * 60 * 1000
UNUSED_CLIENT_LIFETIME_MS = 24 * 3600 * 1000
CROSS_SIGNING_RESET_WINDOW_MS = 10 * 60 * 1000
CROSS_SIGNING_RESET_ACTION = "org.matrix.cross_signing_reset"
# What /account/ offers: approving a cross-signing reset (m.oauth), sessions and their
# sign-out (the spec's names and MSC4191's older ones, which clients still send).
ACCOUNT_ACTIONS = [
    "org.matrix.cross_signing_reset",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.matrix.sessions_list",
    "org.matrix.session_view",
    "org.matrix.session_end",
]
# RFC 7636 section 4.1 / 4.2.
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class PageError(Exception):
    """Shown to the user on a page, never sent to the client's redirect URI (RFC 6749
    section 4.1.2.1: an unknown client or redirect URI must not be redirected to)."""


@dataclass(frozen=True)
class Pending:
    """A request waiting for the user: an authorization, a legacy SSO login, a device
    authorization, or a sign-in started from the account page. The messages of the
    pages are the keys of oauth/strings.py (MatrixError messages here too)."""

    id: str
    kind: str  # "authorize", "sso", "device", "account" (back to /account/), ...
    params: dict[str, str]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def with_params(uri: str, params: dict[str, str], mode: str) -> str:
    """`uri` carrying `params` in its query or fragment (OAuth response modes)."""
    parts = urlsplit(uri)
    encoded = urlencode(params)
    if mode == "fragment":
        return urlunsplit(parts._replace(fragment=encoded))
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    return urlunsplit(parts._replace(query=query))


class AuthorizationServer:
    def __init__(
        self,
        db: Database,
        config: Config,
        tokens: TokenService,
        login: Login,
        register_limiter: RateLimiter,
        notifier: Notifier | None = None,
    ) -> None:
        self.register_limiter = register_limiter
        self.registration_limiter = RateLimiter(1.0, 20, enabled=config.rate_limits.enabled)
        self.db = db
        self.config = config
        self.tokens = tokens
        self.login = login
        self.notifier = notifier
        self.base = config.base_url
        self.external: ExternalAuth | None = None
        self._upstream: UpstreamProviders | None = None
        self.device_grant = DeviceGrant(self)
        if config.auth.mode == "external":
            self.external = ExternalAuth(db, config.auth.external, config.server_name)
            tokens.external = self.external

    @property
    def registration_open(self) -> bool:
        registration = self.config.registration
        return registration.enabled and not registration.require_token

    @property
    def password_login(self) -> bool:
        """m.login.password stays in /login (config [oauth] password_login)."""
        if self.config.auth.mode == "external":
            return False
        return self.config.oauth.password_login or not self.config.oauth.enabled

    @property
    def login_flows(self) -> list[dict[str, Any]]:
        """/login's m.login.sso (through our pages; MSC3824) and m.login.token."""
        if not self.config.oauth.enabled or self.config.auth.mode == "external":
            return []
        sso: dict[str, Any] = {"type": "m.login.sso", "oauth_aware_preferred": True}
        if self.config.oauth.upstream:
            sso["identity_providers"] = [
                {"id": p.id, "name": p.name or p.id} for p in self.config.oauth.upstream
            ]
        return [sso, {"type": "m.login.token"}]

    # -- discovery ----------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 metadata as the spec's server metadata discovery asks."""
        base = self.base
        return {
            "issuer": base + "/",
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "registration_endpoint": base + REGISTRATION_PATH,
            "revocation_endpoint": base + REVOCATION_PATH,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
            "device_authorization_endpoint": base + DEVICE_AUTHORIZATION_PATH,
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "prompt_values_supported": ["create"],
            "scopes_supported": ["urn:matrix:client:api:*", "urn:matrix:client:device:*"],
            "account_management_uri": base + ACCOUNT_PATH,
            "account_management_actions_supported": ACCOUNT_ACTIONS,
        }

    async def external_metadata(self) -> dict[str, Any]:
        assert self.external is not None
        return await self.external.metadata()

    # -- clients ------------------------------------------------------------------------

    async def register_client(self, body: Any, ip: str) -> ClientMetadata:
        # Registration is open to anyone: bounded per address so it cannot fill the disk
        # (429 M_LIMIT_EXCEEDED with retry_after_ms, like every rate limit here).
        self.registration_limiter.check_and_spend(ip)
        client_id = "dl" + secrets.token_hex(12)
        metadata = clients.validate_registration(body, client_id, now_ms())
        encoded = msgspec.json.encode(metadata)

        def register(conn: apsw.Connection) -> None:
            oauth.insert_client(conn, client_id, encoded, now_ms())

        await self.db.write(register)
        return metadata

    async def get_client(self, client_id: str) -> ClientMetadata | None:
        raw = await self.db.read(lambda conn: oauth.get_client(conn, client_id))
        return msgspec.json.decode(raw, type=ClientMetadata) if raw is not None else None

    # -- authorization requests -----------------------------------------------------------

    async def check_authorization(self, params: dict[str, str]) -> ClientMetadata:
        """Validate GET /oauth2/authorize. PageError when the client or redirect URI is
        wrong; OAuthError (to be redirected back) for everything else."""
        client_id = params.get("client_id", "")
        client = await self.get_client(client_id) if client_id else None
        if client is None:
            raise PageError("unknown_client")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or not clients.redirect_uri_matches(client, redirect_uri):
            raise PageError("bad_redirect_uri")
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code")
        if params.get("response_mode", "query") not in ("query", "fragment"):
            raise invalid_request("response_mode must be query or fragment")
        if "authorization_code" not in client.grant_types:
            raise OAuthError("unauthorized_client", "the client did not register this grant")
        if params.get("code_challenge_method") != "S256":
            raise invalid_request("PKCE with code_challenge_method S256 is required")
        if not _CHALLENGE.match(params.get("code_challenge", "")):
            raise invalid_request("code_challenge must be a base64url SHA-256")
        parse_scope(params.get("scope"))
        if params.get("prompt") == "none":
            raise OAuthError("interaction_required", "this server always asks the user")
        return client

    def error_redirect(self, params: dict[str, str], error: OAuthError) -> str:
        answer = {"error": error.error, "error_description": error.description}
        if "state" in params:
            answer["state"] = params["state"]
        return with_params(params["redirect_uri"], answer, params.get("response_mode", "query"))

    async def save_pending(self, kind: str, params: dict[str, str]) -> str:
        pending_id = secrets.token_urlsafe(18)
        encoded = msgspec.json.encode(params)

        def save(conn: apsw.Connection) -> None:
            now = now_ms()
            oauth.prune(conn, now, now - PENDING_LIFETIME_MS, now - UNUSED_CLIENT_LIFETIME_MS)
            oauth.insert_pending(conn, pending_id, kind, encoded, now)

        await self.db.write(save)
        return pending_id

    async def load_pending(self, pending_id: str) -> Pending | None:
        since = now_ms() - PENDING_LIFETIME_MS
        found = await self.db.read(lambda conn: oauth.get_pending(conn, pending_id, since))
        if found is None:
            return None
        kind, raw = found
        return Pending(pending_id, kind, msgspec.json.decode(raw, type=dict[str, str]))

    async def approve(self, pending: Pending, uid: UserId) -> str:
        """The user consented: a code, sent to the redirect URI."""
        params = pending.params
        scope = parse_scope(params.get("scope"))
        code = secrets.token_urlsafe(32)
        row = oauth.CodeRow(
            client_id=params["client_id"],
            user_id=uid,
            device_id=DeviceId(scope.device_id),
            redirect_uri=params["redirect_uri"],
            scope=scope.scope,
            code_challenge=params["code_challenge"],
            expires_ts=now_ms() + self.config.oauth.code_lifetime_ms,
            used_ts=None,
        )

        def issue(conn: apsw.Connection) -> None:
            oauth.insert_code(conn, token_digest(code), row)
            oauth.delete_pending(conn, pending.id)

        await self.db.write(issue)
        answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"]
        return with_params(params["redirect_uri"], answer, params.get("response_mode", "query"))

    async def update_pending(self, pending: Pending | None, **params: str) -> Pending:
        """The pending request with more params (a new "account" one if it expired)."""
        if pending is None:
            pending_id = await self.save_pending("account", params)
            return Pending(pending_id, "account", params)
        merged = {**pending.params, **params}
        encoded = msgspec.json.encode(merged)
        await self.db.write(lambda conn: oauth.set_pending_params(conn, pending.id, encoded))
        return Pending(pending.id, pending.kind, merged)

    async def device_approve(self, pending: Pending, uid: UserId, allow: bool) -> None:
        await self.device_grant.decide(pending, uid, allow)

    @property
    def upstream(self) -> UpstreamProviders:
        """Upstream OpenID Connect providers; built (and authlib's JOSE loaded) on first use."""
        if self._upstream is None:
            from dendrite_lite.oauth.upstream import UpstreamProviders

            self._upstream = UpstreamProviders(self)
        return self._upstream

    async def drop_pending(self, pending: Pending) -> None:
        await self.db.write(lambda conn: oauth.delete_pending(conn, pending.id))

    async def deny(self, pending: Pending) -> str:
        await self.drop_pending(pending)
        error = OAuthError("access_denied", "the user denied the request")
        return self.error_redirect(pending.params, error)

    # -- token endpoint -----------------------------------------------------------------

    async def token(self, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return await self._exchange_code(form)
        if grant_type == "refresh_token":
            return await self._refresh(form)
        if grant_type == DEVICE_CODE_GRANT:
            return await self.device_grant.poll(form)
        if not grant_type:
            raise invalid_request("grant_type is required")
        raise OAuthError("unsupported_grant_type", "unsupported grant_type")

    async def _exchange_code(self, form: dict[str, str]) -> dict[str, Any]:
        for key in ("code", "redirect_uri", "client_id", "code_verifier"):
            if not form.get(key):
                raise invalid_request(f"{key} is required")
        verifier = form["code_verifier"]
        if not _VERIFIER.match(verifier):
            raise invalid_request("code_verifier must be 43-128 unreserved characters")
        digest = token_digest(form["code"])

        def exchange(conn: apsw.Connection) -> tuple[str, Any]:
            now = now_ms()
            code = oauth.use_code(conn, digest, now)
            if code is None:
                return "error", "unknown authorization code"
            if code.used_ts is not None:
                # RFC 6749 section 4.1.2: a reused code revokes what it issued.
                if oauth.session_client(conn, code.user_id, code.device_id) == code.client_id:
                    return "reused", self._end_device_in(conn, code.user_id, code.device_id)
                return "error", "authorization code already used"
            if code.client_id != form["client_id"]:
                return "error", "the code was issued to another client"
            if code.expires_ts <= now:
                return "error", "authorization code expired"
            if code.redirect_uri != form["redirect_uri"]:
                return "error", "redirect_uri differs from the authorization request"
            if not hmac.compare_digest(s256(verifier), code.code_challenge):
                return "error", "code_verifier does not match the code_challenge"
            user = users.get(conn, code.user_id)
            if user is None or user.deactivated or user.locked:
                return "error", "the account is not active"
            issued = self.start_session_in(
                conn, code.user_id, code.device_id, code.client_id, code.scope
            )
            return "ok", (issued, code.scope)

        outcome, value = await self.db.write(exchange)
        if outcome == "reused":
            self._notify(value)
            raise invalid_grant("authorization code already used; its tokens are revoked")
        if outcome == "error":
            raise invalid_grant(value)
        issued, scope = value
        return self.token_answer(issued.access_token, issued.refresh_token, scope)

    async def _refresh(self, form: dict[str, str]) -> dict[str, Any]:
        refresh_token = form.get("refresh_token")
        client_id = form.get("client_id")
        if not refresh_token:
            raise invalid_request("refresh_token is required")
        if not client_id:
            raise invalid_request("client_id is required")
        digest = token_digest(refresh_token)

        def rotate(conn: apsw.Connection) -> tuple[str, Any]:
            row = tokens.lookup_refresh(conn, digest)
            if row is None:
                owner = oauth.refresh_owner(conn, digest)
                if owner is None:
                    return "error", "unknown refresh token"
                # A rotated-away refresh token came back: it leaked, the session ends
                # (spec: "SHOULD consider that the session is compromised").
                return "reused", self._end_device_in(conn, owner[0], owner[1])
            if oauth.session_client(conn, row.user_id, row.device_id) != client_id:
                return "error", "the refresh token was issued to another client"
            if row.expires_ts is not None and row.expires_ts <= now_ms():
                return "error", "refresh token expired"
            user = users.get(conn, row.user_id)
            if user is None or user.deactivated or user.locked:
                return "error", "the account is not active"
            issued = self.tokens.rotate_in(conn, row)
            assert issued.refresh_token is not None
            oauth.remember_refresh(
                conn, token_digest(issued.refresh_token), row.user_id, row.device_id
            )
            scope = conn.execute(
                "SELECT scope FROM oauth_sessions WHERE user_id = ? AND device_id = ?",
                (row.user_id, row.device_id),
            ).fetchone()
            return "ok", (issued, scope[0] if scope else "")

        outcome, value = await self.db.write(rotate)
        if outcome == "reused":
            self._notify(value)
            raise invalid_grant("refresh token already used; the session is revoked")
        if outcome == "error":
            raise invalid_grant(value)
        issued, scope = value
        return self.token_answer(issued.access_token, issued.refresh_token, scope)

    def start_session_in(
        self, conn: apsw.Connection, uid: UserId, device_id: DeviceId, client_id: str, scope: str
    ) -> IssuedTokens:
        """The device of a new grant, with its first access and refresh tokens."""
        now = now_ms()
        # A device ID already in use is taken over, as a password login does.
        tokens.revoke_device(conn, uid, device_id)
        devices.upsert(conn, uid, device_id, None, now)
        oauth.upsert_session(conn, uid, device_id, client_id, scope, now)
        issued = self.tokens.issue_in(conn, uid, device_id, with_refresh=True)
        assert issued.refresh_token is not None
        oauth.remember_refresh(conn, token_digest(issued.refresh_token), uid, device_id)
        return issued

    def token_answer(self, access: str, refresh: str | None, scope: str) -> dict[str, Any]:
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.config.auth.access_token_lifetime_ms // 1000,
            "refresh_token": refresh,
            "scope": scope,
        }

    # -- revocation (RFC 7009) ------------------------------------------------------------

    async def revoke(self, form: dict[str, str]) -> None:
        """The device behind the token ends; unknown tokens are not an error (RFC 7009 2.2)."""
        token = form.get("token")
        if not token:
            raise invalid_request("token is required")
        hint = form.get("token_type_hint")
        if hint is not None and hint not in ("access_token", "refresh_token"):
            raise OAuthError("unsupported_token_type", "token_type_hint is not supported")
        digest = token_digest(token)

        def revoke(conn: apsw.Connection) -> tuple[Any, list[str]] | None:
            access = tokens.lookup_access(conn, digest)
            if access is not None:
                return self._end_device_in(conn, access.user_id, access.device_id)
            refresh = tokens.lookup_refresh(conn, digest)
            if refresh is not None:
                return self._end_device_in(conn, refresh.user_id, refresh.device_id)
            return None

        ended = await self.db.write(revoke)
        if ended is not None:
            self._notify(ended)

    async def end_device(self, uid: UserId, device_id: str) -> bool:
        def end(conn: apsw.Connection) -> tuple[Any, list[str]] | None:
            if devices.get(conn, uid, device_id) is None:
                return None
            return self._end_device_in(conn, uid, DeviceId(device_id))

        ended = await self.db.write(end)
        if ended is not None:
            self._notify(ended)
        return ended is not None

    def _end_device_in(
        self, conn: apsw.Connection, uid: UserId, device_id: DeviceId
    ) -> tuple[Any, list[str]]:
        # Its tokens, keys and grant go with it (foreign keys, storage/devices.py).
        position = devices.delete(conn, uid, [device_id])
        wake = device_lists.users_to_wake(conn, [(uid, None)]) if position else []
        return position, wake

    def _notify(self, ended: tuple[Any, list[str]]) -> None:
        position, wake = ended
        if position is not None and self.notifier is not None:
            self.notifier.notify(wake, position)

    # -- the user, in the browser ---------------------------------------------------------

    async def check_password(self, username: str, password: str, ip: str) -> UserId:
        """The pages' password sign-in, held to /login's rate limits. MatrixError on failure."""
        login = self.login
        login.per_ip.check_and_spend(ip)
        uid = local_user_id(username.strip(), self.config.server_name)
        if uid is None:
            raise MatrixError(403, ErrCode.FORBIDDEN, "invalid_credentials")
        login.failed_per_user.check(uid)
        row = await self.db.read(lambda conn: users.get(conn, uid))
        ok = await login.passwords.verify(row.password_hash if row else None, password)
        if row is None or not ok:
            login.failed_per_user.spend(uid)
            raise MatrixError(403, ErrCode.FORBIDDEN, "invalid_credentials")
        if row.deactivated:
            raise MatrixError(403, ErrCode.USER_DEACTIVATED, "deactivated")
        if row.locked:
            raise MatrixError(401, ErrCode.USER_LOCKED, "locked")
        return uid

    async def create_account(self, localpart: str, password: str | None) -> UserId:
        """Registration through the pages (prompt=create) or an upstream first sign-in."""
        localpart = localpart.strip().lower()
        check_new_localpart(localpart, self.config.server_name)
        if password is not None:
            check_password_strength(password, self.login.passwords.min_length)
        uid = user_id(localpart, self.config.server_name)
        password_hash = await self.login.passwords.hash(password) if password else None

        def create(conn: apsw.Connection) -> bool:
            if users.exists(conn, uid):
                return False
            users.insert(conn, uid, password_hash, now_ms())
            profiles.set_field(conn, uid, "displayname", msgspec.json.encode(localpart))
            return True

        if not await self.db.write(create):
            raise MatrixError(400, ErrCode.USER_IN_USE, "user_in_use")
        return uid

    async def sign_in(self, uid: UserId) -> str:
        """A browser session for `uid`; the cookie value."""
        cookie = secrets.token_urlsafe(32)
        now = now_ms()
        expires = now + self.config.oauth.browser_session_lifetime_ms

        def sign_in(conn: apsw.Connection) -> None:
            oauth.insert_browser_session(conn, token_digest(cookie), uid, now, expires)

        await self.db.write(sign_in)
        return cookie

    async def session_user(self, cookie: str | None) -> UserId | None:
        if not cookie:
            return None
        digest = token_digest(cookie)
        return await self.db.read(lambda conn: oauth.browser_session_user(conn, digest, now_ms()))

    async def sign_out(self, cookie: str) -> None:
        digest = token_digest(cookie)
        await self.db.write(lambda conn: oauth.delete_browser_session(conn, digest))

    async def set_password(self, uid: UserId, new_password: str) -> None:
        """Change password from the account page (the other sessions stay signed in)."""
        check_password_strength(new_password, self.login.passwords.min_length)
        password_hash = await self.login.passwords.hash(new_password)
        await self.db.write(lambda conn: users.set_password_hash(conn, uid, password_hash))

    # -- legacy SSO: m.login.token ------------------------------------------------------------

    async def sso_approve(self, pending: Pending, uid: UserId) -> str:
        """The user confirmed a legacy SSO login: a single-use m.login.token for the client."""
        login_token = secrets.token_urlsafe(32)
        expires = now_ms() + self.config.oauth.login_token_lifetime_ms

        def issue(conn: apsw.Connection) -> None:
            oauth.insert_login_token(conn, token_digest(login_token), uid, expires)
            oauth.delete_pending(conn, pending.id)

        await self.db.write(issue)
        return with_params(pending.params["redirect_url"], {"loginToken": login_token}, "query")

    async def take_login_token(self, login_token: str) -> UserId | None:
        digest = token_digest(login_token)
        return await self.db.write(lambda conn: oauth.take_login_token(conn, digest, now_ms()))

    # -- m.oauth: approving a cross-signing reset on the account page ----------------------------

    async def approve_cross_signing_reset(self, uid: UserId) -> None:
        """The user allowed replacing their cross-signing keys for the next ten minutes."""
        approval_id = "xs:" + uid
        now = now_ms()

        def approve(conn: apsw.Connection) -> None:
            oauth.delete_pending(conn, approval_id)
            oauth.insert_pending(conn, approval_id, "cross_signing_reset", b"{}", now)

        await self.db.write(approve)

    async def cross_signing_reset_gate(
        self, requester: Requester, auth: dict[str, Any] | None
    ) -> bool:
        """The m.oauth stage of POST /keys/device_signing/upload (spec: OAuth authentication).

        Sessions signed in through OAuth cannot do UIA: they are sent to the account page
        to approve the reset, then retry with the session. Other sessions get UIA (False).
        """
        uid, device_id = requester.user_id, requester.device_id
        approval_id = "xs:" + uid
        since = now_ms() - CROSS_SIGNING_RESET_WINDOW_MS

        external = self.config.auth.mode == "external"

        def check(conn: apsw.Connection) -> tuple[bool, bool]:
            # In external mode every session is an OAuth one (MAS's); approvals then come
            # from MAS (/_synapse/mas/allow_cross_signing_reset).
            if not external and oauth.session_client(conn, uid, device_id) is None:
                return False, False
            approved = oauth.get_pending(conn, approval_id, since) is not None
            if approved:
                oauth.delete_pending(conn, approval_id)  # one reset per approval
            return True, approved

        is_oauth, approved = await self.db.write(check)
        if not is_oauth:
            return False
        if approved:
            return True
        session = auth.get("session") if isinstance(auth, dict) else None
        account = self.base + ACCOUNT_PATH
        if external:
            account = self.config.auth.external.account_management_url or self.base + "/"
        separator = "&" if "?" in account else "?"
        url = account + separator + "action=" + CROSS_SIGNING_RESET_ACTION
        body = {
            "flows": [{"stages": ["m.oauth"]}],
            "params": {"m.oauth": {"url": url}},
            "session": session if isinstance(session, str) else secrets.token_urlsafe(18),
        }
        raise UIARequired(body)
