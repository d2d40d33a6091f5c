"""Runs the app under uvicorn: one process, one event loop.

`dendrite-lite run` execs `python -m dendrite_lite.server`, so the serving process never
loads the command line's libraries (typer, rich, and pydantic through typer): about
14 MiB of a Raspberry Pi's memory (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from dendrite_lite import data_dir, systemd_notify
from dendrite_lite.config import Config, ConfigError, load
from dendrite_lite.http_protocol import HttpProtocol

log = logging.getLogger("dendrite_lite")


class _Server(uvicorn.Server):
    """uvicorn's server, waking once a second when idle instead of ten times.

    uvicorn's main loop sleeps 0.1 s at a time to notice a stop signal and to refresh the
    Date header every tenth tick. On a small board each of those wake-ups after an idle
    gap costs ~1 ms of cold-cache CPU: ~3 % of a core with nobody connected. Here the
    loop wakes on the second (the Date header stays exact) and a stop signal wakes it at
    once.
    """

    _tick: asyncio.Future[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    # Called as the server starts to stop (the notifier's stop_waiting): long-polls
    # answer at once instead of holding the shutdown.
    on_stopping: Callable[[], None] | None = None

    async def main_loop(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        # on_tick(0) refreshes the Date header and says whether to stop.
        while not await self.on_tick(0):
            tick = self._tick = loop.create_future()
            timer = loop.call_later(1.0 - time.time() % 1.0, _wake, tick)
            try:
                await tick
            finally:
                timer.cancel()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._tick is not None:
            self._loop.call_soon_threadsafe(_wake, self._tick)

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            systemd_notify.notify("READY=1\nSTATUS=serving")
            log.info("listening on %s", self.config.host + ":" + str(self.config.port))

    async def shutdown(self, sockets: Any = None) -> None:
        systemd_notify.notify("STOPPING=1")
        if self.on_stopping is not None:
            self.on_stopping()
        await super().shutdown(sockets)


def _wake(tick: asyncio.Future[None]) -> None:
    if not tick.done():
        tick.set_result(None)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve(config: Config) -> None:
    """Serve until SIGTERM/SIGINT; raises DataDirLocked if a server already runs here."""
    from dendrite_lite.app import asgi_app

    lock = data_dir.lock(config.data_dir)
    try:
        configure_logging(config.logging.level)
        app, services = asgi_app(config)
    except BaseException:
        lock.close()
        raise
    uv_config = uvicorn.Config(
        app,
        host=config.listen_host,
        port=config.listen_port,
        loop="uvloop" if _has_uvloop() else "asyncio",
        http=HttpProtocol,
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=10,
        backlog=1024,
    )
    server = _Server(uv_config)
    server.on_stopping = services.notifier.stop_waiting
    # Everything built so far lives as long as the process: keep it out of the
    # collector's scans, whose full passes otherwise stall every request in flight.
    gc.collect()
    gc.freeze()
    try:
        server.run()
    finally:
        lock.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m dendrite_lite.server --data-dir DIR` (what `dendrite-lite run` execs)."""
    # Nothing in the server uses pydantic; when it is importable (typer depends on it),
    # Litestar loads its pydantic plugins, ~8 MiB. Block it before Litestar is imported.
    if "litestar" not in sys.modules:
        sys.modules.setdefault("pydantic", None)  # type: ignore[arg-type]
    parser = argparse.ArgumentParser(prog="dendrite_lite.server")
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args(argv)
    try:
        config = load(args.data_dir)
    except ConfigError as exc:
        print(f"error: config: {exc}", file=sys.stderr)
        return 2
    try:
        serve(config)
    except ConfigError as exc:  # found while building the app (e.g. an email template)
        print(f"error: config: {exc}", file=sys.stderr)
        return 2
    except data_dir.DataDirLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
