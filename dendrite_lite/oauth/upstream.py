"""Upstream OpenID Connect providers ("Sign in with X"): Keycloak, Authentik, Auth0,
Google, any certified provider. docs/auth.md has set-ups.

The browser goes to the provider with our state, a nonce and a PKCE challenge; back at
/oauth2/upstream/callback the code is exchanged (client secret when configured, the PKCE
verifier always) and the id_token checked: signature against the provider's JWKS,
iss, aud (and azp), exp/iat, nonce. The subject is then linked to an account: found by
an earlier link, else a new account named by the localpart claim, else (the name is
taken) linked, refused or confirmed with the account's password, per config.

authlib's JOSE implementation (joserfc) and httpx are imported on first use: a server
without upstream providers never loads them.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import apsw
import msgspec

from dendrite_lite.clock import now_ms
from dendrite_lite.config import OAuthUpstreamConfig
from dendrite_lite.errors import MatrixError
from dendrite_lite.identifiers import user_id
from dendrite_lite.oauth.server import PENDING_LIFETIME_MS, AuthorizationServer, Pending, s256
from dendrite_lite.storage import oauth, profiles, threepid, users
from dendrite_lite.types import UserId

CALLBACK_PATH = "/oauth2/upstream/callback"
DISCOVERY_TTL_S = 3600.0
CLOCK_SKEW_S = 60
_TIMEOUT_S = 10.0
# Asymmetric algorithms only: "none" and HMAC with a guessable key are refused.
ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]


class UpstreamError(Exception):
    """Sign-in at the provider failed; `reason` is shown to the user (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UpstreamResult:
    """Where the browser goes next, and the session cookie if the user is now signed in."""

    pending: Pending | None
    user: UserId | None
    # An account with the claimed name exists and wants its password once (on_existing =
    # "password"): the login page is shown with this localpart and the link request.
    confirm_localpart: str | None = None


def validate_id_token(
    id_token: str,
    jwks: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now_s: float | None = None,
) -> dict[str, Any]:
    """The id_token's claims once OpenID Connect Core 3.1.3.7's checks pass."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    try:
        key_set = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        token = jwt.decode(id_token, key_set, algorithms=ALGORITHMS)
    except (JoseError, ValueError, TypeError) as exc:
        raise UpstreamError(f"id_token rejected ({type(exc).__name__})") from None
    claims: dict[str, Any] = dict(token.claims)
    now = time.time() if now_s is None else now_s
    if claims.get("iss") != issuer:
        raise UpstreamError("id_token issuer mismatch")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise UpstreamError("id_token audience mismatch")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise UpstreamError("id_token authorized party mismatch")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp + CLOCK_SKEW_S < now:
        raise UpstreamError("id_token expired")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat - CLOCK_SKEW_S > now:
        raise UpstreamError("id_token issued in the future")
    sent_nonce = claims.get("nonce")
    if not isinstance(sent_nonce, str) or not secrets.compare_digest(sent_nonce, nonce):
        raise UpstreamError("id_token nonce mismatch")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise UpstreamError("id_token has no subject")
    return claims


def claims_allowed(claims: dict[str, Any], allowed: dict[str, list[str]]) -> bool:
    """Every configured claim must hold (or, for a list claim, contain) an allowed value."""
    for name, values in allowed.items():
        value = claims.get(name)
        held = value if isinstance(value, list) else [value]
        if not any(isinstance(item, str) and item in values for item in held):
            return False
    return True


def verified_email(claims: dict[str, Any], claim: str) -> str | None:
    """The email claim, lower-cased, only when the provider says it verified it."""
    value = claims.get(claim)
    if claims.get("email_verified") is not True or not isinstance(value, str):
        return None
    address = value.strip().lower()
    return address if 3 <= len(address) <= 254 and "@" in address[1:-1] else None


def localpart_from(value: Any) -> str | None:
    """A claim turned into a localpart: lower case, the part before any @."""
    if not isinstance(value, str) or not value:
        return None
    candidate = value.split("@", 1)[0].strip().lower()
    allowed = "abcdefghijklmnopqrstuvwxyz0123456789._=-/+"
    cleaned = "".join(ch if ch in allowed else "_" for ch in candidate)
    return cleaned or None


async def _get_json(url: str) -> dict[str, Any]:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
        document = response.json()
    except (httpx.HTTPError, ValueError):
        raise UpstreamError("the provider is unreachable") from None
    if response.status_code != 200 or not isinstance(document, dict):
        raise UpstreamError(f"the provider answered {response.status_code}")
    return document


async def fetch_discovery(provider: OAuthUpstreamConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The provider's discovery document (its issuer checked) and its JWKS."""
    issuer = provider.issuer.rstrip("/")
    metadata = await _get_json(issuer + "/.well-known/openid-configuration")
    if str(metadata.get("issuer", "")).rstrip("/") != issuer:
        raise UpstreamError("the discovery document names another issuer")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(key), str):
            raise UpstreamError(f"the discovery document lacks {key}")
    jwks = await _get_json(metadata["jwks_uri"])
    if not isinstance(jwks.get("keys"), list):
        raise UpstreamError("the JWKS has no keys")
    return metadata, jwks


class UpstreamProviders:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self.db = server.db
        self.providers = {p.id: p for p in server.config.oauth.upstream}
        self._discovery: dict[str, tuple[float, dict[str, Any], dict[str, Any]]] = {}

    @property
    def callback_url(self) -> str:
        return self.server.base + CALLBACK_PATH

    async def discover(
        self, provider: OAuthUpstreamConfig, *, refresh: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The provider's discovery document and JWKS, cached for an hour."""
        cached = self._discovery.get(provider.id)
        if cached is not None and not refresh and cached[0] > time.monotonic():
            return cached[1], cached[2]
        metadata, jwks = await fetch_discovery(provider)
        self._discovery[provider.id] = (time.monotonic() + DISCOVERY_TTL_S, metadata, jwks)
        return metadata, jwks

    async def start(self, provider_id: str, pending: Pending | None) -> str:
        """The provider's authorization URL for this browser."""
        provider = self.providers.get(provider_id)
        if provider is None:
            raise UpstreamError("unknown provider")
        metadata, _ = await self.discover(provider)
        if pending is None:
            pending_id = await self.server.save_pending("account", {})
        else:
            pending_id = pending.id
        state = secrets.token_urlsafe(24)
        nonce = secrets.token_urlsafe(24)
        # PKCE wherever the provider does not say it lacks S256 (most do not say at all).
        methods = metadata.get("code_challenge_methods_supported")
        use_pkce = provider.pkce and (not isinstance(methods, list) or "S256" in methods)
        verifier = secrets.token_urlsafe(48) if use_pkce else ""
        row = oauth.UpstreamState(provider.id, nonce, verifier, pending_id, now_ms())
        await self.db.write(lambda conn: oauth.insert_upstream_state(conn, state, row))
        params = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": self.callback_url,
            "scope": " ".join(provider.scopes),
            "state": state,
            "nonce": nonce,
        }
        if verifier:
            params.update(code_challenge=s256(verifier), code_challenge_method="S256")
        endpoint = str(metadata["authorization_endpoint"])
        separator = "&" if "?" in endpoint else "?"
        return endpoint + separator + urlencode(params)

    async def callback(self, params: dict[str, str]) -> UpstreamResult:
        state = params.get("state", "")
        row = await self.db.write(lambda conn: oauth.take_upstream_state(conn, state))
        if row is None or row.created_ts + PENDING_LIFETIME_MS < now_ms():
            raise UpstreamError("unknown or expired state")
        provider = self.providers.get(row.provider_id)
        if provider is None:
            raise UpstreamError("unknown provider")
        pending = await self.server.load_pending(row.pending_id)
        if "error" in params:
            raise UpstreamError(f"the provider said {params['error']}")
        code = params.get("code")
        if not code:
            raise UpstreamError("no code")
        metadata, jwks = await self.discover(provider)
        if params.get("iss") and params["iss"].rstrip("/") != str(metadata["issuer"]).rstrip("/"):
            raise UpstreamError("the callback names another issuer")  # RFC 9207 mix-up defence
        answer = await self._exchange(provider, metadata, code, row.code_verifier)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamError("no id_token in the token response")
        issuer, client_id = str(metadata["issuer"]), provider.client_id
        try:
            claims = validate_id_token(
                id_token, jwks, issuer=issuer, client_id=client_id, nonce=row.nonce
            )
        except UpstreamError:
            # The provider may have rotated its keys since we cached them.
            _, jwks = await self.discover(provider, refresh=True)
            claims = validate_id_token(
                id_token, jwks, issuer=issuer, client_id=client_id, nonce=row.nonce
            )
        if not claims_allowed(claims, provider.allowed_claims):
            raise UpstreamError("not_allowed")
        return await self._account_for(provider, claims, pending)

    async def _exchange(
        self, provider: OAuthUpstreamConfig, metadata: dict[str, Any], code: str, verifier: str
    ) -> dict[str, Any]:
        import httpx

        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.callback_url,
            "client_id": provider.client_id,
        }
        if verifier:
            form["code_verifier"] = verifier
        # client_secret_basic when there is a secret; a public client sends only client_id.
        auth: Any = (provider.client_id, provider.client_secret) if provider.client_secret else None
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
                response = await client.post(
                    str(metadata["token_endpoint"]),
                    data=form,
                    auth=auth or httpx.USE_CLIENT_DEFAULT,
                    headers={"Accept": "application/json"},
                )
            answer = response.json()
        except (httpx.HTTPError, ValueError):
            raise UpstreamError("the token endpoint is unreachable") from None
        if response.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise UpstreamError(
                f"the token endpoint refused the code ({error or response.status_code})"
            )
        return answer

    async def _account_for(
        self, provider: OAuthUpstreamConfig, claims: dict[str, Any], pending: Pending | None
    ) -> UpstreamResult:
        subject = str(claims["sub"])
        server_name = self.server.config.server_name
        linked = await self.db.read(lambda conn: oauth.linked_user(conn, provider.id, subject))
        if linked is not None:
            row = await self.db.read(lambda conn: users.get(conn, linked))
            if row is None or row.deactivated:
                raise UpstreamError("deactivated")
            return UpstreamResult(pending, linked)
        email = verified_email(claims, provider.email_claim)
        if provider.link_by_email and email is not None:
            owner = await self.db.read(lambda conn: threepid.owner(conn, "email", email))
            if owner is not None:
                await self.link(provider.id, subject, owner)
                return UpstreamResult(pending, owner)
        localpart = localpart_from(claims.get(provider.localpart_claim)) or localpart_from(subject)
        if localpart is None:
            raise UpstreamError("no usable username claim")
        uid = user_id(localpart, server_name)
        existing = await self.db.read(lambda conn: users.get(conn, uid))
        if existing is not None:
            if existing.deactivated or provider.on_existing == "refuse":
                raise UpstreamError("existing_account")
            if provider.on_existing == "password":
                # The sign-in page asks for the account's password once; signing in with
                # it links the subject (api/client/oauth_pages.py).
                link = f"{provider.id}\n{subject}\n{uid}"
                pending = await self.server.update_pending(pending, upstream_link=link)
                return UpstreamResult(pending, None, confirm_localpart=localpart)
            await self.link(provider.id, subject, uid)
            return UpstreamResult(pending, uid)
        try:
            uid = await self.server.create_account(localpart, None)
        except MatrixError:
            raise UpstreamError("no usable username claim") from None
        display = claims.get(provider.displayname_claim)
        now = now_ms()

        def link_new(conn: apsw.Connection) -> None:
            oauth.link(conn, provider.id, subject, uid, now)
            # A verified address nobody has bound becomes the account's, for login by
            # address and password-reset mail.
            if email is not None and threepid.owner(conn, "email", email) is None:
                threepid.bind(conn, uid, "email", email, now, now)
            if isinstance(display, str) and display.strip():
                profiles.set_field(
                    conn, uid, "displayname", msgspec.json.encode(display.strip()[:256])
                )

        await self.db.write(link_new)
        return UpstreamResult(pending, uid)

    async def link(self, provider_id: str, subject: str, uid: UserId) -> None:
        now = now_ms()
        await self.db.write(lambda conn: oauth.link(conn, provider_id, subject, uid, now))
