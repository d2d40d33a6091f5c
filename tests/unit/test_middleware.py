"""The edge middleware's request IDs: what ties a 500's answer to its log line."""

from __future__ import annotations

import asyncio
from typing import Any

from dendrite_lite.api.middleware import EdgeMiddleware
from dendrite_lite.metrics import Metrics


def test_every_request_gets_its_own_id_from_one_process_prefix() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["state"]["request_id"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(_message: dict[str, Any]) -> None:
        pass

    async def run(middleware: EdgeMiddleware, n: int) -> None:
        for _ in range(n):
            scope = {"type": "http", "method": "GET", "path": "/x", "raw_path": b"/x"}
            await middleware(scope, None, send)

    first, second = EdgeMiddleware(app, Metrics()), EdgeMiddleware(app, Metrics())
    asyncio.run(run(first, 3))
    asyncio.run(run(second, 1))
    assert len(set(seen)) == 4
    prefixes = {request_id.split("-")[0] for request_id in seen[:3]}
    assert len(prefixes) == 1 and seen[3].split("-")[0] not in prefixes
    assert [request_id.split("-")[1] for request_id in seen[:3]] == ["1", "2", "3"]


def test_each_request_is_counted_in_its_endpoint_method_and_status_series() -> None:
    statuses = iter([200, 200, 404])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["path_template"] = "/x/{id}"
        await send({"type": "http.response.start", "status": next(statuses), "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(_message: dict[str, Any]) -> None:
        pass

    async def run(middleware: EdgeMiddleware) -> None:
        for n in range(3):
            scope = {"type": "http", "method": "GET", "path": f"/x/{n}", "raw_path": b"/x"}
            await middleware(scope, None, send)

    metrics = Metrics()
    asyncio.run(run(EdgeMiddleware(app, metrics)))
    text = metrics.render().decode()
    labels = 'endpoint="/x/{id}",method="GET"'
    assert f'dendrite_http_requests_total{{{labels},status="200"}} 2.0' in text
    assert f'dendrite_http_requests_total{{{labels},status="404"}} 1.0' in text
    assert f"dendrite_http_request_seconds_count{{{labels}}} 3.0" in text
