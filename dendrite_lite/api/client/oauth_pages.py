"""The server's own pages for the OAuth 2.0 API: sign in, create an account
(prompt=create), consent, and account management (sessions, password).

Plain HTML forms that work without JavaScript. Every form carries a CSRF token that must
equal the browser's dl_csrf cookie (double submit; the cookie is SameSite=Lax and
HttpOnly), so another site cannot post them on the user's behalf.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from dendrite_lite.api.client.oauth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    html_page,
    message_page,
    query_params,
    read_form,
    redirect,
    require_enabled,
)
from dendrite_lite.api.dependencies import client_ip
from dendrite_lite.api.errors import AnswerNow
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.oauth import pages
from dendrite_lite.oauth.clients import ClientMetadata
from dendrite_lite.oauth.errors import OAuthError
from dendrite_lite.oauth.pages import error_box, escape
from dendrite_lite.oauth.scopes import parse_scope
from dendrite_lite.oauth.server import AuthorizationServer, Pending
from dendrite_lite.oauth.strings import text
from dendrite_lite.types import UserId

AnyRequest = Request[Any, Any, Any]
_ERROR_KEYS: dict[str, str] = {
    ErrCode.LIMIT_EXCEEDED: "rate_limited",
    ErrCode.USER_IN_USE: "user_in_use",
    ErrCode.INVALID_USERNAME: "invalid_username",
    ErrCode.WEAK_PASSWORD: "weak_password",
}


def error_key(error: MatrixError) -> str:
    return _ERROR_KEYS.get(error.errcode, error.message)


class Browser:
    """The CSRF token of this browser (new cookie if it has none) and who is signed in."""

    def __init__(self, request: AnyRequest, user: UserId | None, *, secure: bool = False) -> None:
        self.cookie_csrf = request.cookies.get(CSRF_COOKIE)
        self.csrf = self.cookie_csrf or secrets.token_urlsafe(24)
        self.user = user
        # Behind a TLS reverse proxy the request itself is plain http: public_baseurl says.
        self.secure = request.url.scheme == "https" or secure

    def respond(self, response: Response[Any], session: str | None = None) -> Response[Any]:
        cookies = []
        if self.cookie_csrf != self.csrf:
            cookies.append(self._cookie(CSRF_COOKIE, self.csrf))
        if session is not None:
            cookies.append(self._cookie(SESSION_COOKIE, session, max_age=None if session else 0))
        for cookie in cookies:
            response.set_cookie(cookie)
        return response

    def _cookie(self, key: str, value: str, max_age: int | None = None) -> Cookie:
        return Cookie(
            key=key,
            value=value,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
            max_age=max_age,
        )


async def browser_of(request: AnyRequest, server: AuthorizationServer) -> Browser:
    user = await server.session_user(request.cookies.get(SESSION_COOKIE))
    return Browser(request, user, secure=server.base.startswith("https://"))


async def checked_form(
    request: AnyRequest, server: AuthorizationServer
) -> tuple[Browser, dict[str, str]]:
    """The posted form once its CSRF token checks out; otherwise AnswerNow with the page."""
    require_enabled(server)
    try:
        form = await read_form(request)
    except OAuthError as error:
        raise AnswerNow(message_page(server, error.description)) from None
    browser = await browser_of(request, server)
    sent = form.get("csrf", "")
    if not browser.cookie_csrf or not hmac.compare_digest(
        sent.encode(), browser.cookie_csrf.encode()
    ):
        raise AnswerNow(message_page(server, text("csrf"), status=403))
    return browser, form


async def _pending(server: AuthorizationServer, pending_id: str) -> Pending | None:
    return await server.load_pending(pending_id) if pending_id else None


async def _posted_pending(server: AuthorizationServer, form: dict[str, str]) -> Pending:
    """The sign-in request a posted form continues; AnswerNow if it expired."""
    pending = await _pending(server, form.get("pending", ""))
    if pending is None:
        raise AnswerNow(message_page(server, text("expired_request")))
    return pending


def _after_sign_in(pending: Pending | None) -> str:
    if pending is not None and pending.kind == "account" and pending.params.get("action"):
        return "/account/?" + urlencode({"action": pending.params["action"]})
    if pending is None or pending.kind == "account":
        return "/account/"
    return f"/oauth2/consent?pending={pending.id}"


# -- sign in ---------------------------------------------------------------------------------


def _login_page(
    server: AuthorizationServer,
    browser: Browser,
    pending_id: str,
    *,
    error: str | None = None,
    message: str | None = None,
    username: str = "",
    status: int = 200,
) -> Response[Any]:
    providers = server.config.oauth.upstream
    upstream_html = ""
    if providers:
        links = "".join(
            f'<li><a class="button secondary" href="/oauth2/upstream/{escape(p.id)}'
            f'?pending={escape(pending_id)}">{escape(text("sign_in_with", name=p.name or p.id))}'
            "</a></li>"
            for p in providers
        )
        upstream_html = f'<p>{escape(text("or"))}</p><ul class="upstream">{links}</ul>'
    register_html = ""
    if server.registration_open and pending_id:
        register_html = (
            f'<p><a href="/oauth2/register?pending={escape(pending_id)}">'
            f"{escape(text('no_account'))}</a></p>"
        )
    content = pages.render(
        "login.html",
        "login_title",
        server.config.server_name,
        error_html=error_box(message or (text(error) if error else None)),
        csrf=browser.csrf,
        pending=pending_id,
        username_label=text("username"),
        password_label=text("password"),
        username=username,
        submit=text("sign_in"),
        upstream_html=upstream_html,
        register_html=register_html,
    )
    return browser.respond(html_page(content, status))


@get("/oauth2/login")
async def get_login_page(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """GET /oauth2/login"""
    require_enabled(oauth_server)
    pending_id = param(request, "pending")
    browser = await browser_of(request, oauth_server)
    pending = await _pending(oauth_server, pending_id)
    if pending_id and pending is None:
        return message_page(oauth_server, text("expired_request"))
    # MSC4198: a client may name the account it expects ("mxid:@alice:example.org").
    hint = pending.params.get("login_hint", "") if pending else ""
    username = hint.removeprefix("mxid:") if hint.startswith("mxid:") else ""
    return _login_page(oauth_server, browser, pending_id if pending else "", username=username)


@post("/oauth2/login", status_code=200)
async def post_login_page(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """POST /oauth2/login"""
    browser, form = await checked_form(request, oauth_server)
    pending_id = form.get("pending", "")
    pending = await _pending(oauth_server, pending_id)
    if pending_id and pending is None:
        return message_page(oauth_server, text("expired_request"))
    username = form.get("username", "")
    try:
        uid = await oauth_server.check_password(
            username, form.get("password", ""), client_ip(request)
        )
    except MatrixError as error:
        return _login_page(
            oauth_server,
            browser,
            pending_id,
            error=error_key(error),
            username=username,
            status=error.status,
        )
    if pending is not None and "upstream_link" in pending.params:
        # Signing in with the password confirms the link an upstream sign-in asked for.
        provider_id, subject, link_user = pending.params["upstream_link"].split("\n")
        if link_user == uid:
            await oauth_server.upstream.link(provider_id, subject, uid)
    session = await oauth_server.sign_in(uid)
    return browser.respond(redirect(_after_sign_in(pending)), session)


# -- device authorization grant: the page the user code is entered on ---------------------------


@get("/oauth2/link")
async def get_link_page(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """GET /oauth2/link[?user_code=...] (RFC 8628 verification_uri)"""
    require_enabled(oauth_server)
    browser = await browser_of(request, oauth_server)
    user_code = param(request, "user_code")
    error = None
    if user_code:
        pending = await oauth_server.device_grant.find(user_code)
        if pending is not None:
            if browser.user is None:
                return redirect(f"/oauth2/login?pending={pending.id}")
            return redirect(f"/oauth2/consent?pending={pending.id}")
        error = text("unknown_user_code")
    content = pages.render(
        "link.html",
        "link_title",
        oauth_server.config.server_name,
        error_html=error_box(error),
        explain=text("link_explain"),
        code_label=text("user_code"),
        user_code=user_code,
        submit=text("continue"),
    )
    return browser.respond(html_page(content, 400 if error else 200))


# -- upstream providers ("Sign in with X") --------------------------------------------------------


@get("/oauth2/upstream/callback")
async def upstream_callback(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """GET /oauth2/upstream/callback: back from the provider."""
    from dendrite_lite.oauth.upstream import UpstreamError

    require_enabled(oauth_server)
    browser = await browser_of(request, oauth_server)
    try:
        result = await oauth_server.upstream.callback(query_params(request))
    except (UpstreamError, OAuthError) as error:
        reason = error.reason if isinstance(error, UpstreamError) else error.description
        return browser.respond(message_page(oauth_server, _upstream_message(reason)))
    if result.user is None:
        provider = result.pending.params["upstream_link"].split("\n")[0] if result.pending else ""
        name = oauth_server.upstream.providers[provider].name or provider
        notice = text("upstream_existing", user=result.confirm_localpart or "", name=name)
        pending_id = result.pending.id if result.pending else ""
        return _login_page(
            oauth_server,
            browser,
            pending_id,
            message=notice,
            username=result.confirm_localpart or "",
        )
    session = await oauth_server.sign_in(result.user)
    return browser.respond(redirect(_after_sign_in(result.pending)), session)


def _upstream_message(reason: str) -> str:
    if reason in ("not_allowed", "existing_account", "deactivated"):
        keys = {"not_allowed": "upstream_not_allowed", "deactivated": "deactivated"}
        return text(keys.get(reason, "user_in_use"), name="")
    return text("upstream_failed", name="", reason=reason)


@get("/oauth2/upstream/{provider_id:str}")
async def upstream_start(
    request: AnyRequest,
    oauth_server: NamedDependency[AuthorizationServer],
    provider_id: str,
) -> Response[Any]:
    """GET /oauth2/upstream/{provider_id}: off to the provider's sign-in."""
    from dendrite_lite.oauth.upstream import UpstreamError

    require_enabled(oauth_server)
    browser = await browser_of(request, oauth_server)
    pending_id = param(request, "pending")
    pending = await _pending(oauth_server, pending_id)
    if pending_id and pending is None:
        return message_page(oauth_server, text("expired_request"))
    if provider_id not in oauth_server.upstream.providers:
        return message_page(oauth_server, text("not_found"), status=404)
    try:
        url = await oauth_server.upstream.start(provider_id, pending)
    except UpstreamError as error:
        return message_page(oauth_server, _upstream_message(error.reason), status=502)
    return browser.respond(redirect(url))


# -- create an account (prompt=create) ----------------------------------------------------------


def _register_page(
    server: AuthorizationServer,
    browser: Browser,
    pending_id: str,
    *,
    error: str | None = None,
    username: str = "",
    status: int = 200,
) -> Response[Any]:
    content = pages.render(
        "register.html",
        "register_title",
        server.config.server_name,
        error_html=error_box(text(error) if error else None),
        csrf=browser.csrf,
        pending=pending_id,
        username_label=text("username"),
        password_label=text("password"),
        password2_label=text("password2"),
        username=username,
        submit=text("create_account"),
        have_account=text("have_account"),
    )
    return browser.respond(html_page(content, status))


@get("/oauth2/register")
async def get_register_page(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """GET /oauth2/register"""
    require_enabled(oauth_server)
    browser = await browser_of(request, oauth_server)
    pending = await _pending(oauth_server, param(request, "pending"))
    if pending is None:
        return message_page(oauth_server, text("expired_request"))
    if not oauth_server.registration_open:
        return _login_page(oauth_server, browser, pending.id, error="registration_closed")
    return _register_page(oauth_server, browser, pending.id)


@post("/oauth2/register", status_code=200)
async def post_register_page(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """POST /oauth2/register"""
    browser, form = await checked_form(request, oauth_server)
    pending = await _posted_pending(oauth_server, form)
    if not oauth_server.registration_open:
        return message_page(oauth_server, text("registration_closed"), status=403)
    username = form.get("username", "")
    password = form.get("password", "")
    if password != form.get("password2"):
        return _register_page(
            oauth_server,
            browser,
            pending.id,
            error="passwords_differ",
            username=username,
            status=400,
        )
    try:
        oauth_server.register_limiter.check_and_spend(client_ip(request))
        uid = await oauth_server.create_account(username, password)
    except MatrixError as error:
        return _register_page(
            oauth_server,
            browser,
            pending.id,
            error=error_key(error),
            username=username,
            status=error.status,
        )
    session = await oauth_server.sign_in(uid)
    return browser.respond(redirect(_after_sign_in(pending)), session)


# -- consent ---------------------------------------------------------------------------------


def _client_html(client: ClientMetadata) -> tuple[str, str]:
    logo = (
        f'<img src="{escape(client.logo_uri)}" alt="" width="48" height="48">'
        if client.logo_uri
        else ""
    )
    links = [(client.client_uri, text("client_site"))]
    if client.tos_uri:
        links.append((client.tos_uri, text("tos")))
    if client.policy_uri:
        links.append((client.policy_uri, text("policy")))
    links_html = " · ".join(
        f'<a href="{escape(uri)}" rel="noopener noreferrer" target="_blank">{escape(label)}</a>'
        for uri, label in links
    )
    return logo, f"<p>{links_html}</p>"


@get("/oauth2/consent")
async def get_consent_page(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """GET /oauth2/consent"""
    require_enabled(oauth_server)
    browser = await browser_of(request, oauth_server)
    pending = await _pending(oauth_server, param(request, "pending"))
    if pending is None:
        return message_page(oauth_server, text("expired_request"))
    if browser.user is None:
        return redirect(f"/oauth2/login?pending={pending.id}")
    return await _consent_page(oauth_server, browser, pending, browser.user)


async def _consent_page(
    server: AuthorizationServer, browser: Browser, pending: Pending, user: UserId
) -> Response[Any]:
    values: dict[str, str] = {"csrf": browser.csrf, "pending": pending.id}
    if pending.kind not in ("authorize", "device", "sso"):
        return message_page(server, text("expired_request"))
    if pending.kind == "sso":
        host = urlsplit(pending.params["redirect_url"]).hostname or pending.params["redirect_url"]
        values.update(
            logo_html="",
            client_name=host,
            client_host="",
            links_html="",
            scope_html="",
            question=text("sso_question", host=host, user=user),
        )
    else:
        client = await server.get_client(pending.params["client_id"])
        if client is None:
            return message_page(server, text("unknown_client"))
        logo_html, links_html = _client_html(client)
        device = parse_scope(pending.params.get("scope")).device_id
        name = client.client_name or urlsplit(client.client_uri).hostname or client.client_id
        values.update(
            logo_html=logo_html,
            client_name=name,
            client_host=urlsplit(client.client_uri).hostname or "",
            links_html=links_html,
            scope_html=f"<li>{escape(text('scope_api'))}</li>"
            f"<li>{escape(text('scope_device', device=device))}</li>",
            question=text("question", client=name, user=user),
        )
    content = pages.render(
        "consent.html",
        "consent_title",
        server.config.server_name,
        signed_in_as=text("signed_in_as", user=user),
        switch_account=text("switch_account"),
        allow=text("allow"),
        deny=text("deny"),
        **values,
    )
    return browser.respond(html_page(content))


@post("/oauth2/consent", status_code=200)
async def post_consent_page(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """POST /oauth2/consent: allow sends the code (or login token) to the client."""
    browser, form = await checked_form(request, oauth_server)
    pending = await _posted_pending(oauth_server, form)
    if browser.user is None:
        return redirect(f"/oauth2/login?pending={pending.id}")
    action = form.get("action")
    if pending.kind == "device":
        await oauth_server.device_approve(pending, browser.user, action == "allow")
        key = "device_done" if action == "allow" else "device_denied"
        return message_page(
            oauth_server, text(key), kind="notice", status=200, title_key="done_title"
        )
    if pending.kind not in ("authorize", "sso"):
        return message_page(oauth_server, text("expired_request"))
    if pending.kind == "sso":
        if action != "allow":
            await oauth_server.drop_pending(pending)
            return message_page(oauth_server, text("signed_out"), kind="notice", status=200)
        return redirect(await oauth_server.sso_approve(pending, browser.user))
    if action == "allow":
        return redirect(await oauth_server.approve(pending, browser.user))
    return redirect(await oauth_server.deny(pending))


def param(request: AnyRequest, key: str) -> str:
    try:
        return query_params(request).get(key, "")
    except OAuthError:
        return ""


ROUTES = [
    get_link_page,
    upstream_callback,
    upstream_start,
    get_login_page,
    post_login_page,
    get_register_page,
    post_register_page,
    get_consent_page,
    post_consent_page,
]
