"""Fixtures: one shared server (open registration, rate limits off) and a factory for
servers with their own config. Every server is a real subprocess on a temp data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Overrides, Server
from tests.e2e.matrix import User, register_user

# The default for every test server: rate limits would make a shared server flaky.
BASE_OVERRIDES: dict[str, dict[str, object]] = {"rate_limits": {"enabled": False}}


def _merge(overrides: Overrides | None) -> dict[str, dict[str, object]]:
    merged = {section: dict(keys) for section, keys in BASE_OVERRIDES.items()}
    for section, keys in (overrides or {}).items():
        merged.setdefault(section, {}).update(keys)
    return merged


class ServerFactory:
    """Servers with custom config, started on first use; equal configs share one server."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._shared: dict[str, Server] = {}
        self._all: list[Server] = []

    def __call__(
        self,
        overrides: Overrides | None = None,
        *,
        open_registration: bool = True,
        shared: bool = True,
        start: bool = True,
    ) -> Server:
        merged = _merge(overrides)
        key = repr((sorted((s, sorted(k.items())) for s, k in merged.items()), open_registration))
        if shared and key in self._shared:
            return self._shared[key]
        data_dir: Path = self._tmp.mktemp("server")
        server = Server.create(data_dir, merged, open_registration=open_registration)
        self._all.append(server)
        if shared:
            self._shared[key] = server
        if start:
            server.start()
        return server

    def close(self) -> None:
        for server in self._all:
            server.signal_stop()  # all at once: each takes a while to shut down
        errors = []
        for server in self._all:
            try:
                server.stop()
            except RuntimeError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path_factory)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def server(server_factory: ServerFactory) -> Server:
    """The shared server: open registration (m.login.dummy), rate limits off."""
    return server_factory()


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def user(http: httpx.Client) -> User:
    """A freshly registered user on the shared server, logged in on one device."""
    return register_user(http)
