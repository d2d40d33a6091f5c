"""The device authorization grant (RFC 8628): https://spec.matrix.org/latest/client-server-api/#device-authorisation-flow

For clients without a usable browser (a TV, a CLI, a QR code shown on a kiosk): the client
gets a device code and shows the user a short user code and a URL; the user opens it
anywhere, signs in and consents; meanwhile the client polls the token endpoint.

State lives in the pending-request table: the request under "dc:" + the device code's
SHA-256 (so polling finds it and the browser never sees the device code itself), and
an index row under "uc:" + the user code.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import token_digest
from dendrite_lite.clock import now_ms
from dendrite_lite.oauth.errors import OAuthError, invalid_grant, invalid_request
from dendrite_lite.oauth.scopes import parse_scope
from dendrite_lite.storage import oauth, users
from dendrite_lite.types import DeviceId, UserId

if TYPE_CHECKING:
    from dendrite_lite.oauth.server import AuthorizationServer, Pending

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LINK_PATH = "/oauth2/link"
LIFETIME_S = 600
INTERVAL_S = 5
# RFC 8628 section 6.1: no vowels (no words), no look-alike characters; 8 of 20 letters.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def normalise_user_code(user_code: str) -> str:
    return "".join(ch for ch in user_code.upper() if ch in USER_CODE_ALPHABET)


def _pending_id(device_code: str) -> str:
    return "dc:" + token_digest(device_code).hex()


class DeviceGrant:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server

    async def authorize(self, form: dict[str, str]) -> dict[str, Any]:
        """POST /oauth2/device: the device code, user code and where to enter it."""
        client_id = form.get("client_id")
        if not client_id:
            raise invalid_request("client_id is required")
        client = await self.server.get_client(client_id)
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if GRANT not in client.grant_types:
            raise OAuthError("unauthorized_client", "the client did not register this grant")
        scope = parse_scope(form.get("scope"))
        device_code = secrets.token_urlsafe(32)
        raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        user_code = f"{raw[:4]}-{raw[4:]}"
        request_id = _pending_id(device_code)
        params = {
            "client_id": client_id,
            "scope": scope.scope,
            "user_code": user_code,
            "status": "pending",
            "expires_ts": str(now_ms() + LIFETIME_S * 1000),
            "last_poll_ts": "0",
        }

        def save(conn: apsw.Connection) -> None:
            now = now_ms()
            oauth.insert_pending(conn, request_id, "device", msgspec.json.encode(params), now)
            index = msgspec.json.encode({"device": request_id})
            oauth.insert_pending(conn, "uc:" + raw, "device_user_code", index, now)

        await self.server.db.write(save)
        link = self.server.base + LINK_PATH
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": link,
            "verification_uri_complete": f"{link}?user_code={user_code}",
            "expires_in": LIFETIME_S,
            "interval": INTERVAL_S,
        }

    async def find(self, user_code: str) -> Pending | None:
        """The waiting request a user code names (the link page), if it is still open."""
        code = normalise_user_code(user_code)
        if len(code) != 8:
            return None
        index = await self.server.load_pending("uc:" + code)
        if index is None:
            return None
        pending = await self.server.load_pending(index.params["device"])
        if pending is None or pending.params.get("status") != "pending":
            return None
        if int(pending.params["expires_ts"]) <= now_ms():
            return None
        return pending

    async def decide(self, pending: Pending, uid: UserId, allow: bool) -> None:
        """The user consented (or not) on the link page."""
        await self.server.update_pending(
            pending, status="approved" if allow else "denied", user_id=uid
        )
        code = normalise_user_code(pending.params["user_code"])
        await self.server.db.write(lambda conn: oauth.delete_pending(conn, "uc:" + code))

    async def poll(self, form: dict[str, str]) -> dict[str, Any]:
        """The token endpoint's device_code grant (RFC 8628 section 3.4/3.5)."""
        device_code = form.get("device_code")
        client_id = form.get("client_id")
        if not device_code or not client_id:
            raise invalid_request("device_code and client_id are required")
        request_id = _pending_id(device_code)
        server = self.server

        def poll(conn: apsw.Connection) -> tuple[str, Any]:
            found = oauth.get_pending(conn, request_id, 0)
            if found is None or found[0] != "device":
                return "invalid_grant", "unknown device_code"
            params: dict[str, str] = msgspec.json.decode(found[1], type=dict[str, str])
            if params["client_id"] != client_id:
                return "invalid_grant", "the device_code was issued to another client"
            now = now_ms()
            if int(params["expires_ts"]) <= now:
                oauth.delete_pending(conn, request_id)
                return "expired_token", "the device code expired"
            status = params["status"]
            if status == "denied":
                oauth.delete_pending(conn, request_id)
                return "access_denied", "the user denied the request"
            if status == "pending":
                too_soon = now - int(params["last_poll_ts"]) < INTERVAL_S * 1000
                params["last_poll_ts"] = str(now)
                oauth.set_pending_params(conn, request_id, msgspec.json.encode(params))
                if too_soon:
                    return "slow_down", "polling faster than the interval"
                return "authorization_pending", "the user has not finished yet"
            uid = UserId(params["user_id"])
            user = users.get(conn, uid)
            oauth.delete_pending(conn, request_id)
            if user is None or user.deactivated or user.locked:
                return "invalid_grant", "the account is not active"
            scope = parse_scope(params["scope"])
            issued = server.start_session_in(
                conn, uid, DeviceId(scope.device_id), client_id, scope.scope
            )
            return "ok", (issued, scope.scope)

        outcome, value = await server.db.write(poll)
        if outcome == "invalid_grant":
            raise invalid_grant(value)
        if outcome != "ok":
            raise OAuthError(outcome, value)
        issued, scope = value
        return server.token_answer(issued.access_token, issued.refresh_token, scope)
