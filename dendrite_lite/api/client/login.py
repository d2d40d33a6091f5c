"""Login, logout and refresh: https://spec.matrix.org/latest/client-server-api/#login"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency

from dendrite_lite.accounts.login import Login
from dendrite_lite.api.body import parse_body
from dendrite_lite.api.dependencies import client_ip
from dendrite_lite.auth.tokens import Requester, TokenService
from dendrite_lite.errors import ErrCode, MatrixError


class LoginResponse(msgspec.Struct, omit_defaults=True):
    user_id: str
    access_token: str
    device_id: str
    refresh_token: str | None = None
    expires_in_ms: int | None = None
    home_server: str | None = None
    well_known: dict[str, Any] | None = None


class RefreshBody(msgspec.Struct):
    refresh_token: str


class RefreshResponse(msgspec.Struct, omit_defaults=True):
    access_token: str
    refresh_token: str | None = None
    expires_in_ms: int | None = None


@get("/_matrix/client/v3/login")
async def get_login_flows(login: NamedDependency[Login]) -> dict[str, Any]:
    """GET /_matrix/client/v3/login"""
    return {"flows": login.flows}


@post("/_matrix/client/v3/login", status_code=200)
async def login(
    request: Request[Any, Any, Any],
    login: NamedDependency[Login],
    server_name: NamedDependency[str],
    data: dict[str, Any],
) -> LoginResponse:
    """POST /_matrix/client/v3/login"""
    _check_types(data)
    device_id = _optional_str(data, "device_id", 255)
    display_name = _optional_str(data, "initial_device_display_name", 1000)
    refresh = data.get("refresh_token", False)
    if not isinstance(refresh, bool):
        raise MatrixError(400, ErrCode.BAD_JSON, "refresh_token must be a boolean")
    result = await login.login(
        data,
        ip=client_ip(request),
        device_id=device_id,
        device_display_name=display_name,
        refresh_token=refresh,
    )
    return LoginResponse(
        user_id=result.user_id,
        access_token=result.tokens.access_token,
        device_id=result.device_id,
        refresh_token=result.tokens.refresh_token,
        expires_in_ms=result.tokens.expires_in_ms,
        home_server=server_name,
    )


@post("/_matrix/client/v3/refresh", status_code=200)
async def refresh(tokens: NamedDependency[TokenService], data: Any) -> RefreshResponse:
    """POST /_matrix/client/v3/refresh"""
    body = parse_body(data, RefreshBody)
    issued = await tokens.refresh(body.refresh_token)
    return RefreshResponse(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in_ms=issued.expires_in_ms,
    )


@post("/_matrix/client/v3/logout", status_code=200)
async def logout(
    login: NamedDependency[Login], requester: NamedDependency[Requester]
) -> dict[str, Any]:
    """POST /_matrix/client/v3/logout"""
    await login.logout(requester)
    return {}


@post("/_matrix/client/v3/logout/all", status_code=200)
async def logout_all(
    login: NamedDependency[Login], requester: NamedDependency[Requester]
) -> dict[str, Any]:
    """POST /_matrix/client/v3/logout/all"""
    await login.logout_all(requester)
    return {}


# The string fields of a login body and of its `identifier`, whichever login type or
# identifier type uses them: https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3login
_LOGIN_STRINGS = ("type", "password", "token", "user", "medium", "address")
_IDENTIFIER_STRINGS = ("type", "user", "medium", "address", "country", "phone")


def _check_types(data: dict[str, Any]) -> None:
    """The body is read by hand (the login service and UIA's `claimed_user` share it),
    so its JSON types are checked here: a wrong one is M_BAD_JSON, as everywhere."""
    for key in _LOGIN_STRINGS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise MatrixError(400, ErrCode.BAD_JSON, f"{key} must be a string")
    identifier = data.get("identifier")
    if identifier is None:
        return
    if not isinstance(identifier, dict):
        raise MatrixError(400, ErrCode.BAD_JSON, "identifier must be an object")
    for key in _IDENTIFIER_STRINGS:
        if identifier.get(key) is not None and not isinstance(identifier[key], str):
            raise MatrixError(400, ErrCode.BAD_JSON, f"identifier.{key} must be a string")


def _optional_str(data: dict[str, Any], key: str, max_length: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MatrixError(400, ErrCode.BAD_JSON, f"{key} must be a string")
    if not value or len(value) > max_length:
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"Invalid {key}")
    return value
