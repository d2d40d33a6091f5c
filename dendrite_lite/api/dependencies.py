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
    return bearer_token(
        request.headers.get("authorization"), request.query_params.get("access_token")
    )


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token of an Authorization header (which must be Bearer), else the query's."""
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError(401, ErrCode.MISSING_TOKEN, "Invalid Authorization header")
        return token.strip()
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
    if requester.is_guest:
        check_guest_may(request)
    devices.saw(requester, now_ms(), client_ip(request), request.headers.get("user-agent"))
    return requester


_V3 = "/_matrix/client/v3"
# https://spec.matrix.org/latest/client-server-api/#client-behaviour-14 (guest access):
# the endpoints guests may use; everything else answers M_GUEST_ACCESS_FORBIDDEN.
GUEST_ENDPOINTS = frozenset(
    {
        ("GET", f"{_V3}/rooms/{{room_id}}/state"),
        ("GET", f"{_V3}/rooms/{{room_id}}/context/{{event_id}}"),
        ("GET", f"{_V3}/rooms/{{room_id}}/event/{{event_id}}"),
        ("GET", f"{_V3}/rooms/{{room_id}}/state/{{event_type}}"),
        ("GET", f"{_V3}/rooms/{{room_id}}/state/{{event_type}}/{{state_key}}"),
        ("GET", f"{_V3}/rooms/{{room_id}}/messages"),
        ("GET", f"{_V3}/rooms/{{room_id}}/members"),
        ("GET", f"{_V3}/sync"),
        ("POST", f"{_V3}/rooms/{{room_id}}/join"),
        ("POST", f"{_V3}/join/{{room_id_or_alias}}"),
        ("POST", f"{_V3}/rooms/{{room_id}}/leave"),
        ("PUT", f"{_V3}/rooms/{{room_id}}/send/{{event_type}}/{{txn_id}}"),
        ("PUT", f"{_V3}/rooms/{{room_id}}/state/{{event_type}}"),
        ("PUT", f"{_V3}/rooms/{{room_id}}/state/{{event_type}}/{{state_key}}"),
        ("PUT", f"{_V3}/sendToDevice/{{event_type}}/{{txn_id}}"),
        ("GET", f"{_V3}/devices"),
        ("GET", f"{_V3}/devices/{{device_id}}"),
        ("PUT", f"{_V3}/devices/{{device_id}}"),
        ("GET", f"{_V3}/account/whoami"),
        ("POST", f"{_V3}/logout"),
        ("POST", f"{_V3}/keys/upload"),
        ("POST", f"{_V3}/keys/query"),
        ("POST", f"{_V3}/keys/claim"),
        # Spec 1.12: guests may fetch media (pictures in the rooms they can read).
        ("GET", "/_matrix/client/v1/media/download/{origin}/{media_id}"),
        ("GET", "/_matrix/client/v1/media/download/{origin}/{media_id}/{file_name}"),
        ("GET", "/_matrix/client/v1/media/thumbnail/{origin}/{media_id}"),
    }
)
_GUEST_PROFILE = f"{_V3}/profile/{{user_id}}/{{key_name}}"


def check_guest_may(request: Request[Any, Any, Any]) -> None:
    template = request.scope.get("path_template", "")
    method = request.method
    if (method, template) in GUEST_ENDPOINTS:
        return
    # Guests may change (or remove) their display name, and nothing else of the profile.
    if (
        template == _GUEST_PROFILE
        and method in ("PUT", "DELETE")
        and request.path_params.get("key_name") == "displayname"
    ):
        return
    raise MatrixError(403, ErrCode.GUEST_ACCESS_FORBIDDEN, "Guests may not use this endpoint")
