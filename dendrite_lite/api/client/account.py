"""Account management: https://spec.matrix.org/latest/client-server-api/#account-registration-and-management"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency

from dendrite_lite.accounts.account import Account
from dendrite_lite.accounts.devices import Devices
from dendrite_lite.api.body import parse_body
from dendrite_lite.api.client.threepid import optional_requester
from dendrite_lite.auth.tokens import Requester, TokenService
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.threepid.password_reset import PasswordReset


class ChangePasswordBody(msgspec.Struct):
    new_password: str
    logout_devices: bool = True
    auth: dict[str, Any] | None = None


class DeactivateBody(msgspec.Struct):
    auth: dict[str, Any] | None = None
    erase: bool = False
    id_server: str | None = None


@get("/_matrix/client/v3/account/whoami")
async def get_whoami(requester: NamedDependency[Requester]) -> dict[str, Any]:
    """GET /_matrix/client/v3/account/whoami"""
    return {
        "user_id": requester.user_id,
        "device_id": requester.device_id,
        "is_guest": requester.is_guest,
    }


@post("/_matrix/client/v3/account/password", status_code=200)
async def change_password(
    request: Request[Any, Any, Any],
    account: NamedDependency[Account],
    password_reset: NamedDependency[PasswordReset],
    tokens: NamedDependency[TokenService],
    devices: NamedDependency[Devices],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/account/password"""
    # The access token is optional when email is on: the forgotten-password reset
    # (threepid/password_reset.py) proves the account by its email address instead.
    requester = await optional_requester(request, tokens, devices)
    if requester is None and not password_reset.enabled:
        raise MatrixError(401, ErrCode.MISSING_TOKEN, "Missing access token")
    body = parse_body(data, ChangePasswordBody)
    if requester is not None and requester.is_guest:
        raise MatrixError(403, ErrCode.GUEST_ACCESS_FORBIDDEN, "Guests cannot set a password")
    if password_reset.enabled:
        await password_reset.change_password(
            requester, body.new_password, body.logout_devices, body.auth, request.url.path
        )
        return {}
    assert requester is not None
    await account.change_password(
        requester, body.new_password, body.logout_devices, body.auth, request.url.path
    )
    return {}


@post("/_matrix/client/v3/account/deactivate", status_code=200)
async def deactivate_account(
    request: Request[Any, Any, Any],
    account: NamedDependency[Account],
    requester: NamedDependency[Requester],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/account/deactivate"""
    body = parse_body(data, DeactivateBody, default=DeactivateBody())
    await account.deactivate(requester, body.erase, body.auth, request.url.path)
    # No identity server is ever bound by this server.
    return {"id_server_unbind_result": "no-support"}
