"""Threads seen by a real thread-capable client: matrix-js-sdk with `threadSupport: true`
(tests/e2e_js/threads.mjs, run under `node --test`).

Clients started after a thread was built find it through the SDK's own thread support: the
thread list (GET /threads, all and participated), each root's thread summary, the reply
count and latest reply, the thread timeline (GET /relations), and per-thread unread counts
that threaded read receipts clear (MSC3440, MSC3771, MSC3773).

The server is started here with the Python harness, so coverage measures it; the Node run
gets its URL in HOMESERVER_URL. `make test` installs tests/e2e_js/node_modules (npm ci)
first. The Node run has its own per-step and global limits; the subprocess timeout here is
the last guard, so this test cannot hang the suite.

https://spec.matrix.org/latest/client-server-api/#threading
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
SCRIPT = "threads.mjs"
STEP_TIMEOUT_S = 60
NODE_GLOBAL_TIMEOUT_S = 240
SUBPROCESS_TIMEOUT_S = NODE_GLOBAL_TIMEOUT_S + 30


def node_command(node: str) -> list[str]:
    # The polyfill must load before matrix-js-sdk (Promise.withResolvers on Node 20).
    return [
        node,
        "--import",
        "./polyfill.mjs",
        "--test",
        "--test-reporter=spec",
        "--test-force-exit",
        f"--test-timeout={NODE_GLOBAL_TIMEOUT_S * 1000}",
        SCRIPT,
    ]


@pytest.mark.timeout(SUBPROCESS_TIMEOUT_S + 60)
def test_matrix_js_sdk_threads(server_factory: ServerFactory, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node (20.14 or newer) is not on PATH; the threads client test needs it"
    assert (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir(), (
        f"{JS_DIR}/node_modules is missing: run `make test` or `npm ci` in {JS_DIR}"
    )
    server = server_factory(shared=False)
    client_log = tmp_path / "js-client.log"
    env = {
        **os.environ,
        "HOMESERVER_URL": server.url,
        "E2E_JS_LOG_FILE": str(client_log),
        "E2E_STEP_TIMEOUT_MS": str(STEP_TIMEOUT_S * 1000),
        "E2E_GLOBAL_TIMEOUT_MS": str(NODE_GLOBAL_TIMEOUT_S * 1000),
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    }
    proc = subprocess.Popen(
        node_command(node),
        cwd=JS_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills node's test children too
    )
    try:
        output, _ = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(
            f"node --test ran past {SUBPROCESS_TIMEOUT_S}s and was killed\n{output}\n"
            f"--- client log: {client_log}\n--- server log tail:\n{server.log_tail(60)}"
        )
    if proc.returncode != 0:
        pytest.fail(
            f"node --test exited {proc.returncode}\n{output}\n"
            f"--- client log: {client_log}\n--- server log tail:\n{server.log_tail(60)}"
        )
    print(output)  # shown with -rP or -s: the step summary and timings
