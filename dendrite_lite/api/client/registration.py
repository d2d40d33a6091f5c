"""Registration: https://spec.matrix.org/latest/client-server-api/#account-registration-and-management"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery

from dendrite_lite.accounts.registration import RegisterRequest, Registration
from dendrite_lite.api.body import parse_body
from dendrite_lite.api.dependencies import client_ip
from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage import registration_tokens


class RegisterBody(msgspec.Struct):
    username: str | None = None
    password: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    inhibit_login: bool = False
    refresh_token: bool = False
    auth: dict[str, Any] | None = None


class RegisterResponse(msgspec.Struct, omit_defaults=True):
    user_id: str
    access_token: str | None = None
    device_id: str | None = None
    refresh_token: str | None = None
    expires_in_ms: int | None = None
    home_server: str | None = None


@post("/_matrix/client/v3/register", status_code=200)
async def register(
    request: Request[Any, Any, Any],
    registration: NamedDependency[Registration],
    register_limiter: NamedDependency[RateLimiter],
    server_name: NamedDependency[str],
    kind: FromQuery[Literal["user", "guest"]] = "user",
    data: Any = None,
) -> RegisterResponse:
    """POST /_matrix/client/v3/register"""
    body = parse_body(data, RegisterBody, default=RegisterBody())
    if body.device_id is not None and not (0 < len(body.device_id) <= 255):
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid device_id")
    if (
        body.initial_device_display_name is not None
        and len(body.initial_device_display_name) > 1000
    ):
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Device display name is too long")
    if body.auth is None or "session" not in body.auth:
        # Only the opening round of UIA costs a bucket token, so completing the flow does
        # not trip the limit. An auth dict without a session opens a session too (and
        # may complete it at once, as matrix-nio's m.login.dummy does).
        register_limiter.check_and_spend(client_ip(request))
    result = await registration.register(
        RegisterRequest(
            username=body.username,
            password=body.password,
            device_id=body.device_id,
            initial_device_display_name=body.initial_device_display_name,
            inhibit_login=body.inhibit_login,
            refresh_token=body.refresh_token,
            auth=body.auth,
            guest=kind == "guest",
        ),
        uri=request.url.path,
    )
    if result.tokens is None:
        return RegisterResponse(user_id=result.user_id, home_server=server_name)
    return RegisterResponse(
        user_id=result.user_id,
        access_token=result.tokens.access_token,
        device_id=result.device_id,
        refresh_token=result.tokens.refresh_token,
        expires_in_ms=result.tokens.expires_in_ms,
        home_server=server_name,
    )


@get("/_matrix/client/v3/register/available")
async def get_username_availability(
    registration: NamedDependency[Registration], username: FromQuery[str]
) -> dict[str, bool]:
    """GET /_matrix/client/v3/register/available"""
    await registration.check_available(username)
    return {"available": True}


@get("/_matrix/client/v1/register/m.login.registration_token/validity")
async def get_registration_token_validity(
    registration: NamedDependency[Registration], token: FromQuery[str]
) -> dict[str, bool]:
    """GET /_matrix/client/v1/register/m.login.registration_token/validity"""
    if not registration.config.require_token and not registration.config.enabled:
        raise MatrixError(403, ErrCode.FORBIDDEN, "Registration is disabled")
    row = await registration.db.read(lambda conn: registration_tokens.get(conn, token))
    return {"valid": row is not None and row.is_valid(now_ms())}
