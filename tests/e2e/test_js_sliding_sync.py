"""Simplified sliding sync with a real client library: matrix-js-sdk's `SlidingSync`
handed to `startClient({slidingSync})`, as Element Web does (tests/e2e_js/sliding_sync.mjs,
run under `node --test`). The server is started here so that coverage measures it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerFactory

JS_DIR = Path(__file__).resolve().parents[1] / "e2e_js"
NODE_TIMEOUT_S = 120


@pytest.mark.timeout(NODE_TIMEOUT_S + 60)
def test_matrix_js_sdk_sliding_sync(server_factory: ServerFactory, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node (20.14 or newer) is not on PATH; the sliding sync client test needs it"
    assert (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir(), (
        f"{JS_DIR}/node_modules is missing: run `make test` or `npm ci` in {JS_DIR}"
    )
    server = server_factory(shared=False)
    env = {**os.environ, "HOMESERVER_URL": server.url, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    proc = subprocess.Popen(
        [
            node,
            "--import",
            "./polyfill.mjs",
            "--test",
            "--test-reporter=spec",
            "--test-force-exit",
            f"--test-timeout={NODE_TIMEOUT_S * 1000}",
            "sliding_sync.mjs",
        ],
        cwd=JS_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=NODE_TIMEOUT_S + 30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"node --test ran too long and was killed\n{output}\n{server.log_tail(60)}")
    assert proc.returncode == 0 and "pass 5" in output and "fail 0" in output, (
        f"{output}\n--- server log tail:\n{server.log_tail(60)}"
    )
    server.stop()
