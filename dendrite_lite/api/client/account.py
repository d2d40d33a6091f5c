"""Account management: https://spec.matrix.org/latest/client-server-api/#account-registration-and-management"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency

from dendrite_lite.accounts.account import Account
from dendrite_lite.api.body import parse_body
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError


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
    requester: NamedDependency[Requester],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/account/password"""
    body = parse_body(data, ChangePasswordBody)
    if requester.is_guest:
        raise MatrixError(403, ErrCode.GUEST_ACCESS_FORBIDDEN, "Guests cannot set a password")
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
