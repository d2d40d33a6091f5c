"""Runs the app under uvicorn: one process, one event loop."""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn

from dendrite_lite import data_dir, systemd_notify
from dendrite_lite.app import asgi_app
from dendrite_lite.config import Config

log = logging.getLogger("dendrite_lite")


class _Server(uvicorn.Server):
    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            systemd_notify.notify("READY=1\nSTATUS=serving")
            log.info("listening on %s", self.config.host + ":" + str(self.config.port))

    async def shutdown(self, sockets: Any = None) -> None:
        systemd_notify.notify("STOPPING=1")
        await super().shutdown(sockets)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve(config: Config) -> None:
    """Serve until SIGTERM/SIGINT; raises DataDirLocked if a server already runs here."""
    lock = data_dir.lock(config.data_dir)
    configure_logging(config.logging.level)
    app, _services = asgi_app(config)
    uv_config = uvicorn.Config(
        app,
        host=config.listen_host,
        port=config.listen_port,
        loop="uvloop" if _has_uvloop() else "asyncio",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=10,
        backlog=1024,
    )
    server = _Server(uv_config)
    try:
        server.run()
    finally:
        lock.close()


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
