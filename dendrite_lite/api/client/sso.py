"""Legacy single sign-on for clients that do not speak OAuth 2.0 yet:
https://spec.matrix.org/latest/client-server-api/#client-login-via-sso

The redirect sends the browser through the same sign-in pages as the OAuth 2.0 API
(or straight to an upstream provider when an idpId is given); the callback is the
client's redirectUrl with a single-use, short-lived loginToken for m.login.token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response, get
from litestar.di import NamedDependency

from dendrite_lite.api.client.oauth import SESSION_COOKIE, query_params, redirect, require_enabled
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.oauth.errors import OAuthError
from dendrite_lite.oauth.server import AuthorizationServer


async def _start(
    request: Request[Any, Any, Any], server: AuthorizationServer, idp_id: str | None
) -> Response[Any]:
    require_enabled(server)
    try:
        redirect_url = query_params(request).get("redirectUrl", "")
    except OAuthError:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Malformed query string") from None
    if not redirect_url:
        raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing redirectUrl")
    parts = urlsplit(redirect_url)
    if not parts.scheme or len(redirect_url) > 2048 or parts.scheme in ("javascript", "data"):
        raise MatrixError(400, ErrCode.INVALID_PARAM, "redirectUrl must be an absolute URL")
    if idp_id is not None and idp_id not in {p.id for p in server.config.oauth.upstream}:
        raise MatrixError(404, ErrCode.NOT_FOUND, "Unknown identity provider")
    pending_id = await server.save_pending("sso", {"redirect_url": redirect_url})
    if idp_id is not None:
        return redirect(f"/oauth2/upstream/{idp_id}?pending={pending_id}")
    if await server.session_user(request.cookies.get(SESSION_COOKIE)):
        return redirect(f"/oauth2/consent?pending={pending_id}")
    return redirect(f"/oauth2/login?pending={pending_id}")


@get(["/_matrix/client/v3/login/sso/redirect", "/_matrix/client/r0/login/sso/redirect"])
async def redirect_to_sso(
    request: Request[Any, Any, Any], oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """GET /_matrix/client/v3/login/sso/redirect"""
    return await _start(request, oauth_server, None)


@get(
    [
        "/_matrix/client/v3/login/sso/redirect/{idp_id:str}",
        "/_matrix/client/r0/login/sso/redirect/{idp_id:str}",
    ]
)
async def redirect_to_idp(
    request: Request[Any, Any, Any],
    oauth_server: NamedDependency[AuthorizationServer],
    idp_id: str,
) -> Response[Any]:
    """GET /_matrix/client/v3/login/sso/redirect/{idpId}"""
    return await _start(request, oauth_server, idp_id)


ROUTES = [redirect_to_sso, redirect_to_idp]
