"""Simplified sliding sync with a real client library: matrix-js-sdk's `SlidingSync`
handed to `startClient({slidingSync})`, as Element Web does (tests/e2e_js/sliding_sync.mjs,
run under `node --test` by tests/e2e/node_client.py). The server is started here so that
coverage measures it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.node_client import run_scenario

GLOBAL_TIMEOUT_S = 120


@pytest.mark.timeout(GLOBAL_TIMEOUT_S + 90)
def test_matrix_js_sdk_sliding_sync(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(shared=False)
    output = run_scenario(
        "sliding_sync.mjs",
        server,
        tmp_path,
        global_timeout_s=GLOBAL_TIMEOUT_S,
        what="sliding sync client",
    )
    assert "pass 5" in output and "fail 0" in output, output
    server.stop()
