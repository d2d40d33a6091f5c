"""Pure ASGI middleware around the whole app: CORS, request ids, per-endpoint metrics.

CORS: https://spec.matrix.org/latest/client-server-api/#web-browser-clients
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from dendrite_lite.metrics import Metrics

CORS_HEADERS: list[tuple[bytes, bytes]] = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
    (
        b"access-control-allow-headers",
        b"X-Requested-With, Content-Type, Authorization, Date",
    ),
    (b"access-control-expose-headers", b"Retry-After"),
]


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send(
                {"type": "http.response.start", "status": 204, "headers": list(CORS_HEADERS)}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        request_id = secrets.token_hex(6)
        state: dict[str, Any] = scope.setdefault("state", {})  # type: ignore[typeddict-item]
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.extend(CORS_HEADERS)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            endpoint = scope.get("path_template") or "unmatched"  # type: ignore[typeddict-item]
            method = scope["method"]
            self.metrics.requests.labels(endpoint, method, str(status)).inc()
            self.metrics.latency.labels(endpoint, method).observe(time.perf_counter() - started)
