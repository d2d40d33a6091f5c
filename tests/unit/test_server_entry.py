"""The serving process's own entry point (what `dendrite-lite run` execs)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
import uvicorn

from dendrite_lite import data_dir, server
from dendrite_lite.config import render_default


@pytest.fixture(autouse=True)
def _keep_pydantic_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # main() blocks pydantic for the serving process; undo that for the test process.
    monkeypatch.setitem(sys.modules, "pydantic", sys.modules.get("pydantic"))


def test_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert server.main(["--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: config: ")


def test_a_second_server_on_the_same_dir_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.toml").write_text(render_default("localhost", "127.0.0.1:1", False))
    held = data_dir.lock(tmp_path)
    try:
        assert server.main(["--data-dir", str(tmp_path)]) == 1
    finally:
        held.close()
    assert "another dendrite-lite is running" in capsys.readouterr().err


def test_a_broken_email_template_override_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.toml").write_text(render_default("localhost", "127.0.0.1:1", False))
    overrides = tmp_path / "templates" / "email"
    overrides.mkdir(parents=True)
    (overrides / "test.txt").write_text("no subject line here\n")
    assert server.main(["--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config: templates/email/test.txt") and err.count("\n") == 1
    (overrides / "test.txt").write_bytes(b"Subject: \xff\xfe broken\n")
    assert server.main(["--data-dir", str(tmp_path)]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_the_idle_loop_ticks_on_the_second_and_a_stop_wakes_it_at_once() -> None:
    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
        raise AssertionError("not called")

    uv = server._Server(uvicorn.Config(app, log_config=None))
    uv.config.load()

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        running = asyncio.ensure_future(uv.main_loop())
        await asyncio.sleep(0.05)
        assert not running.done()
        # The Date header was set by the first tick.
        assert uv.server_state.default_headers[0][0] == b"date"
        started = loop.time()
        uv.handle_exit(signal.SIGTERM, None)
        await asyncio.wait_for(running, 5)
        return loop.time() - started

    # Without the wake-up the loop would only notice at the next second's tick.
    assert asyncio.run(scenario()) < 0.5
