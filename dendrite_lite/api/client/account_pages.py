"""Account management pages (the OAuth server's account_management_uri): sessions and
their sign-out, password change, signing the browser out, and approving a cross-signing
reset (the m.oauth stage). Same forms and CSRF rules as api/client/oauth_pages.py."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from dendrite_lite.accounts.devices import Devices
from dendrite_lite.api.client.oauth import (
    SESSION_COOKIE,
    html_page,
    message_page,
    redirect,
    require_enabled,
)
from dendrite_lite.api.client.oauth_pages import (
    Browser,
    browser_of,
    checked_form,
    error_key,
    param,
)
from dendrite_lite.api.dependencies import client_ip
from dendrite_lite.errors import MatrixError
from dendrite_lite.oauth import pages
from dendrite_lite.oauth.clients import ClientMetadata
from dendrite_lite.oauth.pages import error_box, escape
from dendrite_lite.oauth.server import CROSS_SIGNING_RESET_ACTION, AuthorizationServer
from dendrite_lite.oauth.strings import text
from dendrite_lite.storage import devices as devices_store
from dendrite_lite.storage import oauth as oauth_store
from dendrite_lite.types import UserId

AnyRequest = Request[Any, Any, Any]


async def _account_page(
    request: AnyRequest,
    server: AuthorizationServer,
    devices: Devices,
    browser: Browser,
    user: UserId,
    *,
    notice: str | None = None,
    password_error: str | None = None,
    status: int = 200,
) -> Response[Any]:
    def read(conn: Any) -> tuple[list[devices_store.DeviceRow], dict[str, bytes]]:
        return devices_store.list_for_user(conn, user), oauth_store.session_clients_of_user(
            conn, user
        )

    rows, clients = await server.db.read(read)
    items = []
    for seen in rows:
        name = seen.display_name or ""
        if seen.device_id in clients:
            metadata = msgspec.json.decode(clients[seen.device_id], type=ClientMetadata)
            name = name or metadata.client_name or urlsplit(metadata.client_uri).hostname or ""
        when = (
            text("last_seen", when=_format_ts(seen.last_seen_ts), ip=seen.last_seen_ip or "?")
            if seen.last_seen_ts
            else text("never_seen")
        )
        items.append(
            f'<li id="device-{escape(seen.device_id)}"><strong>{escape(name or seen.device_id)}'
            f'</strong> <span class="muted">{escape(seen.device_id)}</span><br>'
            f'<span class="muted">{escape(when)}</span>'
            '<form class="inline" method="post" action="/account/devices/delete">'
            f'<input type="hidden" name="csrf" value="{escape(browser.csrf)}">'
            f'<input type="hidden" name="device_id" value="{escape(seen.device_id)}">'
            f' <button type="submit" class="secondary" aria-label="{escape(text("sign_out"))}'
            f' {escape(seen.device_id)}">{escape(text("sign_out"))}</button></form></li>'
        )
    content = pages.render(
        "account.html",
        "account_title",
        server.config.server_name,
        notice_html=f'<p class="notice" role="status">{escape(notice)}</p>' if notice else "",
        signed_in_as=text("signed_in_as", user=user),
        devices_heading=text("devices"),
        devices_html="\n".join(items),
        password_heading=text("change_password_heading"),
        password_error_html=error_box(text(password_error) if password_error else None),
        csrf=browser.csrf,
        current_password=text("current_password"),
        new_password=text("new_password"),
        change_password=text("change_password"),
        sign_out_browser=text("sign_out_browser"),
    )
    return browser.respond(html_page(content, status))


def _format_ts(ts: int | None) -> str:
    if ts is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@get(["/account", "/account/"])
async def get_account_page(
    request: AnyRequest,
    oauth_server: NamedDependency[AuthorizationServer],
    devices: NamedDependency[Devices],
) -> Response[Any]:
    """GET /account/ (account_management_uri; ?action=... lands on the same page)"""
    require_enabled(oauth_server)
    browser = await browser_of(request, oauth_server)
    action = param(request, "action")
    if browser.user is None:
        # Back here after signing in (an "account" request remembers the action).
        pending_id = await oauth_server.save_pending("account", {"action": action})
        return redirect(f"/oauth2/login?pending={pending_id}")
    if action == CROSS_SIGNING_RESET_ACTION:
        content = pages.render(
            "reset.html",
            "reset_title",
            oauth_server.config.server_name,
            explain=text("reset_explain"),
            csrf=browser.csrf,
            allow=text("reset_allow"),
            back=text("reset_back"),
        )
        return browser.respond(html_page(content))
    return await _account_page(request, oauth_server, devices, browser, browser.user)


@post("/account/cross_signing_reset", status_code=200)
async def post_cross_signing_reset(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """POST /account/cross_signing_reset: the m.oauth approval."""
    browser, _form = await checked_form(request, oauth_server)
    if browser.user is None:
        return redirect("/oauth2/login")
    await oauth_server.approve_cross_signing_reset(browser.user)
    answer = message_page(
        oauth_server, text("reset_done"), kind="notice", status=200, title_key="done_title"
    )
    return browser.respond(answer)


@post("/account/devices/delete", status_code=200)
async def post_delete_device(
    request: AnyRequest,
    oauth_server: NamedDependency[AuthorizationServer],
    devices: NamedDependency[Devices],
) -> Response[Any]:
    """POST /account/devices/delete: sign a session out."""
    browser, form = await checked_form(request, oauth_server)
    if browser.user is None:
        return redirect("/oauth2/login")
    device_id = form.get("device_id", "")
    if not await oauth_server.end_device(browser.user, device_id):
        return message_page(oauth_server, text("not_found"), status=404)
    return await _account_page(
        request,
        oauth_server,
        devices,
        browser,
        browser.user,
        notice=text("signed_out_device", device=device_id),
    )


@post("/account/password", status_code=200)
async def post_change_password(
    request: AnyRequest,
    oauth_server: NamedDependency[AuthorizationServer],
    devices: NamedDependency[Devices],
) -> Response[Any]:
    """POST /account/password"""
    browser, form = await checked_form(request, oauth_server)
    user = browser.user
    if user is None:
        return redirect("/oauth2/login")
    try:
        await oauth_server.check_password(user, form.get("current", ""), client_ip(request))
        await oauth_server.set_password(user, form.get("new", ""))
    except MatrixError as error:
        key = "wrong_password" if error.message == "invalid_credentials" else error_key(error)
        return await _account_page(
            request, oauth_server, devices, browser, user, password_error=key, status=error.status
        )
    return await _account_page(
        request, oauth_server, devices, browser, user, notice=text("password_changed")
    )


@post("/account/logout", status_code=200)
async def post_account_logout(
    request: AnyRequest, oauth_server: NamedDependency[AuthorizationServer]
) -> Response[Any]:
    """POST /account/logout: this browser's session ends (the devices stay)."""
    browser, _form = await checked_form(request, oauth_server)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await oauth_server.sign_out(cookie)
    answer = message_page(
        oauth_server,
        text("signed_out"),
        kind="notice",
        status=200,
        title_key="done_title",
        link=("/account/", text("sign_in")),
    )
    return browser.respond(answer, "")


ROUTES = [
    get_account_page,
    post_delete_device,
    post_change_password,
    post_account_logout,
    post_cross_signing_reset,
]
