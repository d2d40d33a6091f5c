"""End-to-end encryption proved by a real encrypting client: matrix-js-sdk with its Rust
crypto (tests/e2e_js/e2ee.test.mjs, run under `node --test`).

The server is started here with the Python harness, so coverage measures it; the Node run
gets its URL in HOMESERVER_URL. `make test` installs tests/e2e_js/node_modules (npm ci)
first. The Node run has its own per-step and global limits; the subprocess timeout here is
the last guard, so this test cannot hang the suite.

https://spec.matrix.org/latest/client-server-api/#end-to-end-encryption
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.node_client import run_scenario

GLOBAL_TIMEOUT_S = 300


@pytest.mark.timeout(GLOBAL_TIMEOUT_S + 90)
def test_matrix_js_sdk_rust_crypto(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(shared=False)
    run_scenario(
        "e2ee.test.mjs", server, tmp_path, global_timeout_s=GLOBAL_TIMEOUT_S, what="E2EE client"
    )
