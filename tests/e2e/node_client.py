"""Running a matrix-js-sdk scenario (tests/e2e_js/*.mjs) under `node --test` against a
real server started by the Python harness, so that coverage measures the server.

The Node run gets the server's URL in HOMESERVER_URL and has its own per-step and global
limits; the subprocess timeout here is the last guard, so a scenario cannot hang the
suite. `make test` installs tests/e2e_js/node_modules (npm ci) first.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import Server

JS_DIR = Path(__file__).resolve().parents[1] / "e2e_js"
STEP_TIMEOUT_S = 60


def run_scenario(
    script: str, server: Server, tmp_path: Path, *, global_timeout_s: int, what: str
) -> str:
    """Run `script` with node; fail the test with the output and both logs unless every
    step passed. Returns node's output (the step summary)."""
    node = shutil.which("node")
    assert node, f"node (20.14 or newer) is not on PATH; the {what} test needs it"
    assert (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir(), (
        f"{JS_DIR}/node_modules is missing: run `make test` or `npm ci` in {JS_DIR}"
    )
    client_log = tmp_path / "js-client.log"
    env = {
        **os.environ,
        "HOMESERVER_URL": server.url,
        "E2E_JS_LOG_FILE": str(client_log),
        "E2E_STEP_TIMEOUT_MS": str(STEP_TIMEOUT_S * 1000),
        "E2E_GLOBAL_TIMEOUT_MS": str(global_timeout_s * 1000),
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    }
    # The polyfill must load before matrix-js-sdk (Promise.withResolvers on Node 20).
    command = [
        node,
        "--import",
        "./polyfill.mjs",
        "--test",
        "--test-reporter=spec",
        "--test-force-exit",
        f"--test-timeout={global_timeout_s * 1000}",
        script,
    ]
    proc = subprocess.Popen(
        command,
        cwd=JS_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills node's test children too
    )
    limit = global_timeout_s + 30
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(
            f"node --test ran past {limit}s and was killed\n{output}\n"
            f"--- client log: {client_log}\n--- server log tail:\n{server.log_tail(60)}"
        )
    if proc.returncode != 0:
        pytest.fail(
            f"node --test exited {proc.returncode}\n{output}\n"
            f"--- client log: {client_log}\n--- server log tail:\n{server.log_tail(60)}"
        )
    print(output)  # shown with -rP or -s: the step summary and timings
    return output
