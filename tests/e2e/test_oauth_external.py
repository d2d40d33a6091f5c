"""External-MAS mode (auth.mode = "external"): access tokens of another OAuth 2.0 server
checked by RFC 7662 introspection at a real HTTP endpoint this test runs; users and
devices provisioned from the answer; auth_metadata advertises that issuer."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, bearer, expect

CLIENT_ID = "dendrite-lite"
CLIENT_SECRET = "introspection-secret"
TOKENS: dict[str, dict[str, Any]] = {
    "mas-good": {
        "active": True,
        "username": "masuser",
        "sub": "01HXYZ",
        "scope": "urn:matrix:client:api:* urn:matrix:client:device:MASDEVICE1",
    },
    "mas-unstable": {
        "active": True,
        "username": "masuser",
        "scope": "urn:matrix:org.matrix.msc2967.client:api:*"
        " urn:matrix:org.matrix.msc2967.client:device:MASDEVICE2",
    },
    "mas-admin": {
        "active": True,
        "username": "masadmin",
        "scope": "urn:matrix:client:api:* urn:synapse:admin:* urn:matrix:client:device:ADM1N",
    },
    "mas-revoked": {"active": False},
    "mas-no-scope": {"active": True, "username": "masuser", "scope": "openid"},
    "mas-bad-user": {"active": True, "username": "Not Valid!", "scope": "urn:matrix:client:api:*"},
    "mas-expired": {
        "active": True,
        "username": "masuser",
        "scope": "urn:matrix:client:api:*",
        "exp": 1000,
    },
}


class Issuer(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/.well-known/openid-configuration":
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            self._answer(
                200,
                {
                    "issuer": base + "/",
                    "authorization_endpoint": base + "/authorize",
                    "token_endpoint": base + "/oauth2/token",
                    "introspection_endpoint": base + "/oauth2/introspect",
                },
            )
        else:
            self._answer(404, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._answer(401, {"error": "invalid_client"})
            return
        Issuer.requests.append(form)
        self._answer(200, TOKENS.get(form.get("token", ""), {"active": False}))


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Issuer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(scope="module")
def external(server_factory: object, issuer: str) -> Server:
    server: Server = server_factory(  # type: ignore[operator]
        {
            "auth": {"mode": "external"},
            "auth.external": {
                "issuer": issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "account_management_url": "https://account.example.org/",
                "cache_ms": 3000,
            },
        }
    )
    return server


def test_tokens_are_introspected_and_users_provisioned(external: Server) -> None:
    with external.client() as http:
        who = expect(http.get(f"{CS}/account/whoami", headers=bearer("mas-good")), 200)
        assert who == {
            "user_id": "@masuser:localhost",
            "device_id": "MASDEVICE1",
            "is_guest": False,
        }
        devices = expect(http.get(f"{CS}/devices", headers=bearer("mas-good")), 200)["devices"]
        assert [d["device_id"] for d in devices] == ["MASDEVICE1"]
        # A second device from the unstable scope names, same user.
        who = expect(http.get(f"{CS}/account/whoami", headers=bearer("mas-unstable")), 200)
        assert who["device_id"] == "MASDEVICE2"
        expect(http.get(f"{CS}/sync", params={"timeout": 0}, headers=bearer("mas-good")), 200)
        # The answer is cached briefly, then asked again.
        asked = len(Issuer.requests)
        expect(http.get(f"{CS}/account/whoami", headers=bearer("mas-good")), 200)
        assert len(Issuer.requests) == asked
        time.sleep(3.2)
        expect(http.get(f"{CS}/account/whoami", headers=bearer("mas-good")), 200)
        assert len(Issuer.requests) == asked + 1
        assert Issuer.requests[-1]["token"] == "mas-good"


def test_inactive_scopeless_and_odd_tokens_are_refused(external: Server) -> None:
    with external.client() as http:
        for token in ("mas-revoked", "never-issued", "mas-bad-user", "mas-expired"):
            expect(http.get(f"{CS}/account/whoami", headers=bearer(token)), 401, "M_UNKNOWN_TOKEN")
        expect(http.get(f"{CS}/account/whoami", headers=bearer("mas-no-scope")), 403, "M_FORBIDDEN")


def test_metadata_is_the_issuers_and_local_oauth_is_off(external: Server, issuer: str) -> None:
    with external.client() as http:
        metadata = expect(http.get("/_matrix/client/v1/auth_metadata"), 200)
        assert metadata["issuer"] == issuer
        assert metadata["account_management_uri"] == "https://account.example.org/"
        assert expect(http.get("/_matrix/client/unstable/org.matrix.msc2965/auth_issuer"), 200) == {
            "issuer": issuer
        }
        expect(http.post("/oauth2/registration", json={}), 404, "M_UNRECOGNIZED")
        assert expect(http.get(f"{CS}/login"), 200) == {"flows": []}
