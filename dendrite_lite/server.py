"""Runs the app under uvicorn: one process, one event loop.

`dendrite-lite run` execs `python -m dendrite_lite.server`, so the serving process never
loads the command line's libraries (typer, rich, and pydantic through typer): about
14 MiB of a Raspberry Pi's memory (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from typing import Any

import uvicorn

from dendrite_lite import data_dir, systemd_notify
from dendrite_lite.config import Config, ConfigError, load

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
    from dendrite_lite.app import asgi_app

    lock = data_dir.lock(config.data_dir)
    try:
        configure_logging(config.logging.level)
        app, _services = asgi_app(config)
    except BaseException:
        lock.close()
        raise
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
