"""Account administrative contact information (3PIDs): email only, no identity server.

https://spec.matrix.org/latest/client-server-api/#adding-account-administrative-contact-information

The requestToken endpoints of registration, password reset and adding an address; the
/account/3pid family; and the page the mailed link opens (also the `submit_url`).
Phone numbers are not supported: their endpoints answer M_THREEPID_MEDIUM_NOT_SUPPORTED.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs, urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery

from dendrite_lite.accounts.devices import Devices
from dendrite_lite.accounts.registration import Registration
from dendrite_lite.api.body import parse_body
from dendrite_lite.api.dependencies import access_token_of, client_ip, provide_requester
from dendrite_lite.auth import uia as uia_stages
from dendrite_lite.auth.tokens import Requester, TokenService
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage.threepid import ValidationSessionRow
from dendrite_lite.threepid.addresses import MEDIUM_NOT_SUPPORTED
from dendrite_lite.threepid.service import Threepids
from dendrite_lite.threepid.sessions import (
    ADD,
    PASSWORD,
    REGISTER,
    SUBMIT_PATH,
    ValidationSessions,
)

_V3 = "/_matrix/client/v3"


class RequestEmailTokenBody(msgspec.Struct):
    client_secret: str
    email: str
    send_attempt: int
    next_link: str | None = None
    id_server: str | None = None  # ignored: this homeserver validates addresses itself
    id_access_token: str | None = None


class RequestTokenResponse(msgspec.Struct, omit_defaults=True):
    sid: str
    submit_url: str | None = None


class Add3PIDBody(msgspec.Struct):
    client_secret: str
    sid: str
    auth: dict[str, Any] | None = None


class Bind3PIDBody(msgspec.Struct):
    client_secret: str
    id_server: str
    sid: str
    id_access_token: str | None = None


class Legacy3PIDBody(msgspec.Struct):
    three_pid_creds: dict[str, Any]


class Delete3PIDBody(msgspec.Struct):
    medium: str
    address: str
    id_server: str | None = None


class SubmitTokenBody(msgspec.Struct):
    sid: str
    client_secret: str
    token: str


async def optional_requester(
    request: Request[Any, Any, Any], tokens: TokenService, devices: Devices
) -> Requester | None:
    """The caller when an access token is given (an invalid one is still an error)."""
    if access_token_of(request) is None:
        return None
    return await provide_requester(request, tokens, devices)


async def _request_token(
    purpose: str,
    sessions: ValidationSessions,
    request: Request[Any, Any, Any],
    data: Any,
    registration: Registration | None = None,
) -> RequestTokenResponse:
    # A malformed body is M_BAD_JSON whatever the server's email settings.
    body = parse_body(data, RequestEmailTokenBody)
    sessions.require_email()
    if registration is not None and not any(
        uia_stages.EMAIL_IDENTITY in flow for flow in registration.flows
    ):
        raise MatrixError(403, ErrCode.FORBIDDEN, "Registration with email is not enabled")
    result = await sessions.request_token(
        purpose,
        body.client_secret,
        body.email,
        body.send_attempt,
        body.next_link,
        client_ip(request),
    )
    return RequestTokenResponse(sid=result.sid, submit_url=result.submit_url)


@post(f"{_V3}/register/email/requestToken", status_code=200)
async def request_token_to_register_email(
    request: Request[Any, Any, Any],
    threepid_sessions: NamedDependency[ValidationSessions],
    registration: NamedDependency[Registration],
    data: Any,
) -> RequestTokenResponse:
    """POST /_matrix/client/v3/register/email/requestToken"""
    return await _request_token(REGISTER, threepid_sessions, request, data, registration)


@post(f"{_V3}/account/password/email/requestToken", status_code=200)
async def request_token_to_reset_password_email(
    request: Request[Any, Any, Any],
    threepid_sessions: NamedDependency[ValidationSessions],
    data: Any,
) -> RequestTokenResponse:
    """POST /_matrix/client/v3/account/password/email/requestToken"""
    return await _request_token(PASSWORD, threepid_sessions, request, data)


@post(f"{_V3}/account/3pid/email/requestToken", status_code=200)
async def request_token_to_3pid_email(
    request: Request[Any, Any, Any],
    threepid_sessions: NamedDependency[ValidationSessions],
    data: Any,
) -> RequestTokenResponse:
    """POST /_matrix/client/v3/account/3pid/email/requestToken"""
    return await _request_token(ADD, threepid_sessions, request, data)


@post(
    [
        f"{_V3}/register/msisdn/requestToken",
        f"{_V3}/account/password/msisdn/requestToken",
        f"{_V3}/account/3pid/msisdn/requestToken",
    ],
    status_code=200,
)
async def request_token_msisdn(data: Any = None) -> dict[str, Any]:
    """POST /_matrix/client/v3/{register,account/password,account/3pid}/msisdn/requestToken"""
    if data is not None and not isinstance(data, dict):
        raise MatrixError(400, ErrCode.BAD_JSON, "Expected a JSON object")
    raise MatrixError(
        400, MEDIUM_NOT_SUPPORTED, "Phone numbers (msisdn) are not supported on this server"
    )


@get(f"{_V3}/account/3pid")
async def get_account_3pids(
    threepids: NamedDependency[Threepids], requester: NamedDependency[Requester]
) -> dict[str, Any]:
    """GET /_matrix/client/v3/account/3pid"""
    rows = await threepids.list(requester.user_id)
    return {
        "threepids": [
            {
                "medium": row.medium,
                "address": row.address,
                "validated_at": row.validated_ts,
                "added_at": row.added_ts,
            }
            for row in rows
        ]
    }


@post(f"{_V3}/account/3pid/add", status_code=200)
async def add_3pid(
    request: Request[Any, Any, Any],
    threepids: NamedDependency[Threepids],
    requester: NamedDependency[Requester],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/account/3pid/add"""
    body = parse_body(data, Add3PIDBody)
    await threepids.add(requester, body.sid, body.client_secret, body.auth, request.url.path)
    return {}


_NO_IDENTITY_SERVER = (
    "This homeserver does not use identity servers; add the address with /account/3pid/add"
)


@post(f"{_V3}/account/3pid/bind", status_code=200)
async def bind_3pid(requester: NamedDependency[Requester], data: Any) -> dict[str, Any]:
    """POST /_matrix/client/v3/account/3pid/bind"""
    parse_body(data, Bind3PIDBody)
    raise MatrixError(400, ErrCode.SERVER_NOT_TRUSTED, _NO_IDENTITY_SERVER)


@post(f"{_V3}/account/3pid", status_code=200)
async def post_3pids(requester: NamedDependency[Requester], data: Any) -> dict[str, Any]:
    """POST /_matrix/client/v3/account/3pid (deprecated; the same as /3pid/bind)"""
    parse_body(data, Legacy3PIDBody)
    raise MatrixError(400, ErrCode.SERVER_NOT_TRUSTED, _NO_IDENTITY_SERVER)


@post(f"{_V3}/account/3pid/delete", status_code=200)
async def delete_3pid(
    threepids: NamedDependency[Threepids], requester: NamedDependency[Requester], data: Any
) -> dict[str, Any]:
    """POST /_matrix/client/v3/account/3pid/delete"""
    body = parse_body(data, Delete3PIDBody)
    await threepids.delete(requester, body.medium, body.address)
    # "If the homeserver does not know the original id_server, it MUST return no-support."
    return {"id_server_unbind_result": "no-support"}


@post(f"{_V3}/account/3pid/unbind", status_code=200)
async def unbind_3pid(requester: NamedDependency[Requester], data: Any) -> dict[str, Any]:
    """POST /_matrix/client/v3/account/3pid/unbind"""
    body = parse_body(data, Delete3PIDBody)
    if body.medium not in ("email", "msisdn"):
        raise MatrixError(400, ErrCode.INVALID_PARAM, "medium must be email or msisdn")
    return {"id_server_unbind_result": "no-support"}


# -- the page the mailed link opens, and submit_url ----------------------------------------

_ACTIONS = {
    REGISTER: ("Confirm your email address", "to create your account", "Confirm"),
    ADD: ("Add this email address", "to be added to your account", "Add this address"),
    PASSWORD: (
        "Allow a password reset",
        "to reset your account's password; continue only if you asked for it",
        "Allow the reset",
    ),
}


@get(SUBMIT_PATH, media_type="text/html")
async def get_submit_token_page(
    threepid_sessions: NamedDependency[ValidationSessions],
    server_name: NamedDependency[str],
    sid: FromQuery[str] = "",
    client_secret: FromQuery[str] = "",
    token: FromQuery[str] = "",
) -> Response[str]:
    """GET /_dendrite/client/email/submit_token: the link in the mail.

    A GET only shows what the link is for, with a button: mail scanners that fetch links
    cannot validate anything, and a reset asks the reader to confirm it was theirs.
    """
    try:
        row = await threepid_sessions.peek(sid, client_secret)
    except MatrixError as exc:
        return _page(server_name, "This link does not work", exc.message, status=400)
    if row.validated_ts is not None:
        return _page(server_name, "Already confirmed", f"{row.address} is confirmed.")
    title, purpose, button = _ACTIONS.get(row.purpose, _ACTIONS[REGISTER])
    fields = urlencode({"sid": sid, "client_secret": client_secret, "token": token})
    form = (
        f'<form method="post" action="{html.escape(SUBMIT_PATH)}?{html.escape(fields)}">'
        f'<button type="submit">{html.escape(button)}</button></form>'
    )
    message = f"Confirm that {row.address} may be used on {server_name} {purpose}."
    return _page(server_name, title, message, extra=form)


@post(SUBMIT_PATH, status_code=200)
async def submit_token(
    request: Request[Any, Any, Any],
    threepid_sessions: NamedDependency[ValidationSessions],
    server_name: NamedDependency[str],
) -> Response[Any]:
    """POST /_dendrite/client/email/submit_token

    JSON ``{sid, client_secret, token}`` is the spec's submit_url (the Identity Service
    API's POST /validate/email/submitToken): ``{"success": true}`` or its errors. The
    confirmation page's form posts the same fields in the query: an HTML answer, or a
    redirect to the session's next_link.
    """
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    if content_type.startswith("application/json"):
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise MatrixError(400, ErrCode.NOT_JSON, "Content not JSON") from None
        body = parse_body(data, SubmitTokenBody)
        await threepid_sessions.submit_token(body.sid, body.client_secret, body.token)
        return Response({"success": True}, status_code=200)
    fields = {key: values[-1] for key, values in parse_qs(request.url.query).items()}
    try:
        row: ValidationSessionRow = await threepid_sessions.submit_token(
            fields.get("sid", ""), fields.get("client_secret", ""), fields.get("token", "")
        )
    except MatrixError as exc:
        return _page(server_name, "This link does not work", exc.message, status=400)
    if row.next_link:
        return Response("", status_code=303, headers={"Location": row.next_link})
    done = {
        REGISTER: "Your email address is confirmed. Go back to your Matrix app to finish.",
        ADD: "Your email address is confirmed. Go back to your Matrix app to finish.",
        PASSWORD: "Confirmed. Go back to your Matrix app to choose your new password.",
    }
    return _page(server_name, "Email address confirmed", done.get(row.purpose, done[ADD]))


def _page(
    server_name: str, title: str, message: str, *, extra: str = "", status: int = 200
) -> Response[Any]:
    body = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} - {html.escape(server_name)}</title>"
        "<style>body{font-family:sans-serif;max-width:34em;margin:3em auto;padding:0 1em;"
        "line-height:1.5}button{font-size:1em;padding:.6em 1.2em}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{extra}</body></html>"
    )
    return Response(
        body,
        status_code=status,
        media_type="text/html",  # Litestar adds "; charset=utf-8"
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


ROUTES: list[Any] = [
    request_token_to_register_email,
    request_token_to_reset_password_email,
    request_token_to_3pid_email,
    request_token_msisdn,
    get_account_3pids,
    add_3pid,
    bind_3pid,
    post_3pids,
    delete_3pid,
    unbind_3pid,
    get_submit_token_page,
    submit_token,
]
