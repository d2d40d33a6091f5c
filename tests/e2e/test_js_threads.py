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

from pathlib import Path

import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.node_client import run_scenario

GLOBAL_TIMEOUT_S = 240


@pytest.mark.timeout(GLOBAL_TIMEOUT_S + 90)
def test_matrix_js_sdk_threads(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(shared=False)
    run_scenario(
        "threads.mjs", server, tmp_path, global_timeout_s=GLOBAL_TIMEOUT_S, what="threads client"
    )
