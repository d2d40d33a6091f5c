"""Request-scoped dependencies: who is calling, and from where."""

from __future__ import annotations

from typing import Any

from litestar import Request

from dendrite_lite.accounts.devices import Devices
from dendrite_lite.auth.tokens import Requester, TokenService
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError


def access_token_of(request: Request[Any, Any, Any]) -> str | None:
    """The Bearer token, or the `access_token` query parameter that spec v1.19 still allows."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError(401, ErrCode.MISSING_TOKEN, "Invalid Authorization header")
        return token.strip()
    query_token: str | None = request.query_params.get("access_token")
    return query_token or None


def client_ip(request: Request[Any, Any, Any]) -> str:
    client = request.scope.get("client")
    return client[0] if client else "unknown"


async def provide_requester(
    request: Request[Any, Any, Any], tokens: TokenService, devices: Devices
) -> Requester:
    token = access_token_of(request)
    if token is None:
        raise MatrixError(401, ErrCode.MISSING_TOKEN, "Missing access token")
    requester = await tokens.authenticate(token)
    devices.saw(requester, now_ms(), client_ip(request), request.headers.get("user-agent"))
    return requester
