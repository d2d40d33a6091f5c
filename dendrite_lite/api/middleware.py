"""Pure ASGI middleware around the whole app: CORS, request ids, per-endpoint metrics.

CORS: https://spec.matrix.org/latest/client-server-api/#web-browser-clients
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import Any
from urllib.parse import unquote

from dendrite_lite.http_protocol import watch_departure
from dendrite_lite.metrics import Metrics

# Plain ASGI callables: the middleware sits outside Litestar and needs none of its types.
ASGIApp = Any
Scope = dict[str, Any]

CORS_HEADERS: list[tuple[bytes, bytes]] = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
    (
        b"access-control-allow-headers",
        b"X-Requested-With, Content-Type, Authorization, Date",
    ),
    (b"access-control-expose-headers", b"Retry-After"),
]
# The same, as the header lines of a whole response (http_protocol.WHOLE_RESPONSE).
CORS_LINES = b"".join(b"%s: %s\r\n" % pair for pair in CORS_HEADERS)


# Event IDs (room v3 base64) and state keys may hold '/', sent as %2F. Routers split
# decoded paths on '/', so an escaped slash travels through routing as this character
# and `path_value` turns it back into '/'.
SLASH_STANDIN = "\ue000"


def protect_slashes(raw_path: bytes) -> str:
    parts = re.split(b"%2[fF]", raw_path)
    return SLASH_STANDIN.join(unquote(part.decode("latin-1")) for part in parts)


def path_value(value: str) -> str:
    return value.replace(SLASH_STANDIN, "/")


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, fast_lane: Any = None) -> None:
        self.app = app
        self.metrics = metrics
        # api/fast_lane.FastLane: the message path's three requests, served without Litestar
        self.fast_lane = fast_lane
        # Request IDs tie a 500's answer to its log line, so they need to be unique, not
        # secret: a counter behind a prefix drawn once per process. (Drawing 6 random bytes
        # per request called getrandom, which lets go of the GIL: in a big room's fan-out
        # every request's first step handed the CPU to another thread.)
        self._request_ids = map(f"{secrets.token_hex(3)}-{{:x}}".format, itertools.count(1))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send(
                {"type": "http.response.start", "status": 204, "headers": list(CORS_HEADERS)}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        raw_path: bytes = scope.get("raw_path") or b""
        if b"%2f" in raw_path.lower():
            scope["path"] = protect_slashes(raw_path)
        if scope["path"].endswith("/sync"):  # the long-polls: /sync and sliding sync
            watch_departure(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = next(self._request_ids)
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *CORS_HEADERS]
            await send(message)

        handler = None if self.fast_lane is None else self.fast_lane.route(scope)
        try:
            if handler is not None:
                # It adds the CORS headers itself when it answers whole, and says its status.
                status = await handler(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            self.metrics.request_done(
                scope.get("path_template") or "unmatched",
                scope["method"],
                status,
                time.perf_counter() - started,
            )
