"""Discovery, health and metrics: what operators and clients ask before anything else.

Well-known: https://spec.matrix.org/latest/client-server-api/#well-known-uris
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from dendrite_lite.api.errors import error_response
from dendrite_lite.config import Config
from dendrite_lite.errors import ErrCode
from dendrite_lite.metrics import Metrics


@get("/.well-known/matrix/client")
async def get_wellknown_client(config: NamedDependency[Config]) -> dict[str, Any]:
    """GET /.well-known/matrix/client"""
    base_url = config.well_known.client_base_url or config.base_url
    return {"m.homeserver": {"base_url": base_url}}


@get("/.well-known/matrix/server")
async def get_wellknown_server(config: NamedDependency[Config]) -> Response[Any]:
    """GET /.well-known/matrix/server"""
    if not config.well_known.server:
        return error_response(404, ErrCode.NOT_FOUND, "No server delegation is configured")
    return Response({"m.server": config.well_known.server})


@get("/health", media_type="text/plain")
async def get_health() -> str:
    """GET /health: the process is up and serving."""
    return "OK"


@get("/metrics", media_type="text/plain; version=0.0.4")
async def get_metrics(metrics: NamedDependency[Metrics]) -> bytes:
    """GET /metrics: Prometheus text exposition."""
    return metrics.render()
