"""matrix-js-sdk's OAuth 2.0 helpers (OAuth2.registerClient, generateAuthorizationCodeGrantUrl,
completeAuthorizationCodeGrant, performRefreshTokenGrant, revokeToken and the device
authorization grant) against the real server, from Node; the user's browser steps are
done here over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import Server
from tests.e2e.matrix import User
from tests.e2e.oauth_browser import REDIRECT_URI, Browser

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "oidc_provider" / "js_oauth_client.mjs"
POLYFILL = ROOT / "e2e_js" / "polyfill.mjs"


def _read(proc: subprocess.Popen[str], step: str) -> dict[str, Any]:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            message: dict[str, Any] = json.loads(line)
            assert message["step"] == step, message
            return message
    proc.wait(timeout=10)
    raise AssertionError(f"node ended before {step}: {proc.stderr.read() if proc.stderr else ''}")


def test_matrix_js_sdk_oauth_helpers(server: Server, http: httpx.Client, user: User) -> None:
    node = shutil.which("node")
    assert node, "node (20.14 or newer) is not on PATH"
    assert (ROOT / "e2e_js" / "node_modules" / "matrix-js-sdk").is_dir(), (
        "tests/e2e_js/node_modules is missing: run `make test` (npm ci there)"
    )
    config = {
        "baseUrl": server.url,
        "redirectUri": REDIRECT_URI,
        "deviceId": "JSSDKDEV01",
        "tvDeviceId": "JSSDKTV001",
    }
    proc = subprocess.Popen(
        [node, "--import", str(POLYFILL), str(SCRIPT), json.dumps(config)],
        cwd=SCRIPT.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    browser = Browser.open(server.url)
    try:
        assert _read(proc, "metadata")["issuer"] == server.url + "/"
        _read(proc, "registered")
        url = _read(proc, "authorize")["url"]
        assert "code_challenge_method=S256" in url and "JSSDKDEV01" in url
        callback = browser.authorize(url.removeprefix(server.url), user.localpart)
        assert proc.stdin is not None
        proc.stdin.write(callback + "\n")
        proc.stdin.flush()
        tokens = _read(proc, "tokens")
        assert tokens["userId"] == user.user_id and tokens["deviceId"] == "JSSDKDEV01"
        refreshed = _read(proc, "refreshed")
        assert refreshed == {"step": "refreshed", "userId": user.user_id, "changed": True}
        assert _read(proc, "revoked")["revoked"] is True
        device = _read(proc, "device")
        consent = browser.get(
            browser.get(device["uri"].removeprefix(server.url)).headers["location"]
        )
        done = browser.submit(consent, "/oauth2/consent", action="allow")
        assert "go back to your device" in done.text
        assert _read(proc, "device_tokens")["deviceId"] == "JSSDKTV001"
        assert proc.wait(timeout=30) == 0
    finally:
        browser.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
