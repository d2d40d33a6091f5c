"""OAuth 2.0 API endpoints: https://spec.matrix.org/latest/client-server-api/#oauth-20-api

Discovery (MSC2965), dynamic client registration (MSC2966), the authorization endpoint
(MSC2964), the token endpoint and revocation (MSC4254). Errors here are OAuth's
``{"error", "error_description"}`` (RFC 6749 section 5.2), not Matrix errcodes, except
on the Matrix discovery path itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from dendrite_lite.api.dependencies import client_ip
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.oauth import pages
from dendrite_lite.oauth.errors import OAuthError, invalid_request
from dendrite_lite.oauth.server import AuthorizationServer, PageError
from dendrite_lite.oauth.strings import text

SESSION_COOKIE = "dl_session"
CSRF_COOKIE = "dl_csrf"

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FORM_BYTES = 64 * 1024


def require_enabled(server: AuthorizationServer) -> None:
    if not server.config.oauth.enabled or server.config.auth.mode == "external":
        raise MatrixError(404, ErrCode.UNRECOGNIZED, "OAuth 2.0 is not enabled on this server")


def parse_form(raw: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded, strictly: each parameter at most once
    (RFC 6749 section 3.1), UTF-8, bounded."""
    if len(raw) > _MAX_FORM_BYTES:
        raise invalid_request("request too large")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise invalid_request("the form is not UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise invalid_request(f"{key} is repeated")
        form[key] = value
    return form


async def read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise invalid_request("expected an application/x-www-form-urlencoded body")
    return parse_form(await request.body())


def query_params(request: Request[Any, Any, Any]) -> dict[str, str]:
    raw = request.scope.get("query_string", b"")
    return parse_form(raw if isinstance(raw, bytes) else b"")


def oauth_error(error: OAuthError) -> Response[Any]:
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(content=error.body(), status_code=error.status, headers=headers)


def redirect(location: str) -> Response[Any]:
    return Response(content=b"", status_code=302, headers={"Location": location, **NO_STORE})


def html_page(content: str, status: int = 200) -> Response[Any]:
    # Pages are never framed (clickjacking of the consent button) nor cached.
    headers = {
        **NO_STORE,
        "X-Frame-Options": "DENY",
        # No form-action: Chrome applies it to the redirect after the consent form, and a
        # native client's private-use scheme matches no source expression.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https:;"
        " frame-ancestors 'none'",
        "Referrer-Policy": "no-referrer",
    }
    return Response(
        content=content.encode("utf-8"),
        status_code=status,
        media_type="text/html",  # Litestar adds "; charset=utf-8"
        headers=headers,
    )


def message_page(
    server: AuthorizationServer,
    message: str,
    *,
    status: int = 400,
    kind: str = "error",
    title_key: str = "error_title",
    link: tuple[str, str] | None = None,
) -> Response[Any]:
    content = pages.message(server.config.server_name, title_key, message, kind=kind, link=link)
    return html_page(content, status)


# -- discovery -----------------------------------------------------------------------------


@get(
    [
        "/_matrix/client/v1/auth_metadata",
        "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
    ]
)
async def get_auth_metadata(oauth_server: NamedDependency[AuthorizationServer]) -> dict[str, Any]:
    """GET /_matrix/client/v1/auth_metadata"""
    if oauth_server.config.auth.mode == "external":
        return await oauth_server.external_metadata()
    require_enabled(oauth_server)
    return oauth_server.metadata()


@get("/_matrix/client/unstable/org.matrix.msc2965/auth_issuer")
async def get_auth_issuer(oauth_server: NamedDependency[AuthorizationServer]) -> dict[str, Any]:
    """GET /_matrix/client/unstable/org.matrix.msc2965/auth_issuer (older clients)"""
    if oauth_server.config.auth.mode == "external":
        return {"issuer": oauth_server.config.auth.external.issuer}
    require_enabled(oauth_server)
    return {"issuer": oauth_server.metadata()["issuer"]}


@get(["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"])
async def get_openid_configuration(
    oauth_server: NamedDependency[AuthorizationServer],
) -> dict[str, Any]:
    """GET /.well-known/openid-configuration (the issuer's own discovery, RFC 8414)"""
    require_enabled(oauth_server)
    return oauth_server.metadata()


# -- registration, token, revocation --------------------------------------------------------


@post("/oauth2/registration", status_code=201)
async def register_client(
    request: Request[Any, Any, Any],
    oauth_server: NamedDependency[AuthorizationServer],
    data: Any = None,
) -> Response[Any]:
    """POST /oauth2/registration (RFC 7591)"""
    require_enabled(oauth_server)
    try:
        metadata = await oauth_server.register_client(data, client_ip(request))
    except OAuthError as error:
        return oauth_error(error)
    return Response(content=metadata.answer(), status_code=201, headers=NO_STORE)


@post("/oauth2/token", status_code=200)
async def request_token(
    request: Request[Any, Any, Any], oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """POST /oauth2/token"""
    require_enabled(oauth_server)
    try:
        answer = await oauth_server.token(await read_form(request))
    except OAuthError as error:
        return oauth_error(error)
    return Response(content=answer, status_code=200, headers=NO_STORE)


@post("/oauth2/device", status_code=200)
async def request_device_authorization(
    request: Request[Any, Any, Any], oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """POST /oauth2/device (RFC 8628 device authorization request)"""
    require_enabled(oauth_server)
    try:
        answer = await oauth_server.device_grant.authorize(await read_form(request))
    except OAuthError as error:
        return oauth_error(error)
    return Response(content=answer, status_code=200, headers=NO_STORE)


@post("/oauth2/revoke", status_code=200)
async def revoke_token(
    request: Request[Any, Any, Any], oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """POST /oauth2/revoke (RFC 7009)"""
    require_enabled(oauth_server)
    try:
        await oauth_server.revoke(await read_form(request))
    except OAuthError as error:
        return oauth_error(error)
    return Response(content={}, status_code=200, headers=NO_STORE)


# -- authorization ----------------------------------------------------------------------------


@get("/oauth2/authorize")
async def authorize(
    request: Request[Any, Any, Any], oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """GET /oauth2/authorize: check the request, then the user signs in and consents."""
    require_enabled(oauth_server)
    try:
        params = query_params(request)
    except OAuthError as error:
        return message_page(oauth_server, error.description, status=400)
    try:
        await oauth_server.check_authorization(params)
    except PageError as error:
        return message_page(oauth_server, text(str(error)), status=400)
    except OAuthError as error:
        return redirect(oauth_server.error_redirect(params, error))
    pending_id = await oauth_server.save_pending("authorize", params)
    if params.get("prompt") == "create":
        return redirect(f"/oauth2/register?pending={pending_id}")
    # prompt=login (OpenID Connect) asks to sign in again even with a browser session.
    signed_in = await oauth_server.session_user(request.cookies.get(SESSION_COOKIE))
    if signed_in and params.get("prompt") != "login":
        return redirect(f"/oauth2/consent?pending={pending_id}")
    return redirect(f"/oauth2/login?pending={pending_id}")


ROUTES = [
    get_auth_metadata,
    get_auth_issuer,
    get_openid_configuration,
    register_client,
    request_token,
    request_device_authorization,
    revoke_token,
    authorize,
]
