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

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, bearer, expect
from tests.e2e.test_keys_client import CrossSigningKeys

CLIENT_ID = "dendrite-lite"
CLIENT_SECRET = "introspection-secret"
SHARED = "shared-with-mas"
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
        # client_secret_basic (msc3861 words) or the shared secret (MAS's matrix.secret).
        if self.headers.get("Authorization") not in (f"Basic {expected}", f"Bearer {SHARED}"):
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
                "secret": SHARED,
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


def mas_call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {SHARED}"}
    return http.request(method, f"/_synapse/mas/{path}", headers=headers, **kwargs)


def test_mas_provisions_users_and_devices(external: Server) -> None:
    with external.client() as http:
        expect(mas_call(http, "GET", "is_localpart_available", params={"localpart": "carol"}), 200)
        made = mas_call(
            http,
            "POST",
            "provision_user",
            json={"localpart": "carol", "set_displayname": "Carol", "set_emails": ["C@x.org"]},
        )
        assert made.status_code == 201
        again = mas_call(
            http,
            "POST",
            "provision_user",
            json={"localpart": "carol", "set_avatar_url": "mxc://x/y"},
        )
        assert again.status_code == 200
        taken = mas_call(http, "GET", "is_localpart_available", params={"localpart": "carol"})
        expect(taken, 400, "M_USER_IN_USE")
        bad = mas_call(http, "GET", "is_localpart_available", params={"localpart": "Not Valid"})
        expect(bad, 400, "M_INVALID_USERNAME")
        user = expect(mas_call(http, "GET", "query_user", params={"localpart": "carol"}), 200)
        assert user == {
            "user_id": "@carol:localhost",
            "display_name": "Carol",
            "avatar_url": "mxc://x/y",
            "is_suspended": False,
            "is_deactivated": False,
        }
        expect(
            mas_call(http, "GET", "query_user", params={"localpart": "nobody"}), 404, "M_NOT_FOUND"
        )
        expect(
            mas_call(
                http, "POST", "set_displayname", json={"localpart": "carol", "displayname": "C."}
            ),
            200,
        )
        assert expect(http.get(f"{CS}/profile/@carol:localhost"), 200)["displayname"] == "C."
        expect(mas_call(http, "POST", "unset_displayname", json={"localpart": "carol"}), 200)
        assert "displayname" not in expect(http.get(f"{CS}/profile/@carol:localhost"), 200)

        device = {"localpart": "carol", "device_id": "CAROLDEV1", "display_name": "Phone"}
        assert mas_call(http, "POST", "upsert_device", json=device).status_code == 201
        assert mas_call(http, "POST", "upsert_device", json=device).status_code == 200
        renamed = {"localpart": "carol", "device_id": "CAROLDEV1", "display_name": "New phone"}
        expect(mas_call(http, "POST", "update_device_display_name", json=renamed), 200)
        missing = {**renamed, "device_id": "NOPE"}
        expect(
            mas_call(http, "POST", "update_device_display_name", json=missing), 404, "M_NOT_FOUND"
        )
        sync = {"localpart": "carol", "devices": ["CAROLDEV2", "CAROLDEV3"]}
        expect(mas_call(http, "POST", "sync_devices", json=sync), 200)
        gone = mas_call(
            http, "POST", "delete_device", json={"localpart": "carol", "device_id": "CAROLDEV2"}
        )
        assert gone.status_code == 204
        TOKENS["mas-carol"] = {
            "active": True,
            "username": "carol",
            "scope": "urn:matrix:client:api:* urn:matrix:client:device:CAROLDEV3",
        }
        listed = expect(http.get(f"{CS}/devices", headers=bearer("mas-carol")), 200)["devices"]
        assert [d["device_id"] for d in listed] == ["CAROLDEV3"]

        expect(
            mas_call(http, "POST", "delete_user", json={"localpart": "carol", "erase": False}), 200
        )
        user = expect(mas_call(http, "GET", "query_user", params={"localpart": "carol"}), 200)
        assert user["is_deactivated"] is True
        expect(mas_call(http, "POST", "reactivate_user", json={"localpart": "carol"}), 200)
        user = expect(mas_call(http, "GET", "query_user", params={"localpart": "carol"}), 200)
        assert user["is_deactivated"] is False


def test_mas_api_needs_the_secret_and_good_bodies(external: Server, server: Server) -> None:
    with external.client() as http:
        wrong = http.post(
            "/_synapse/mas/provision_user",
            json={"localpart": "eve"},
            headers={"Authorization": "Bearer guessed"},
        )
        expect(wrong, 403, "M_FORBIDDEN")
        expect(
            http.get("/_synapse/mas/query_user", params={"localpart": "eve"}), 403, "M_FORBIDDEN"
        )
        expect(mas_call(http, "POST", "provision_user", json={"localpart": 5}), 400, "M_BAD_JSON")
        both = {"localpart": "eve", "set_displayname": "E", "unset_displayname": True}
        expect(mas_call(http, "POST", "provision_user", json=both), 400, "M_INVALID_PARAM")
        expect(mas_call(http, "GET", "query_user"), 400, "M_MISSING_PARAM")
        expect(
            mas_call(http, "POST", "delete_user", json={"localpart": "nobody", "erase": True}), 404
        )
    # Not in external mode: the API does not exist.
    with server.client() as http:
        expect(
            mas_call(http, "GET", "query_user", params={"localpart": "x"}), 404, "M_UNRECOGNIZED"
        )


def test_cross_signing_reset_is_allowed_by_mas(external: Server) -> None:
    with external.client() as http:
        TOKENS["mas-dave"] = {
            "active": True,
            "username": "dave",
            "scope": "urn:matrix:client:api:* urn:matrix:client:device:DAVEDEV1",
        }
        headers = bearer("mas-dave")
        upload = f"{CS}/keys/device_signing/upload"
        expect(
            http.post(upload, headers=headers, json=CrossSigningKeys().body("@dave:localhost")), 200
        )
        replacement = CrossSigningKeys().body("@dave:localhost")
        refused = expect(http.post(upload, headers=headers, json=replacement), 401)
        assert refused["flows"] == [{"stages": ["m.oauth"]}]
        assert refused["params"]["m.oauth"]["url"] == (
            "https://account.example.org/?action=org.matrix.cross_signing_reset"
        )
        expect(mas_call(http, "POST", "allow_cross_signing_reset", json={"localpart": "dave"}), 200)
        auth = {"session": refused["session"]}
        expect(http.post(upload, headers=headers, json={**replacement, "auth": auth}), 200)


def test_introspection_with_the_shared_secret(server_factory: object, issuer: str) -> None:
    """Synapse's matrix_authentication_service words: no client, the secret as bearer."""
    server: Server = server_factory(  # type: ignore[operator]
        {"auth": {"mode": "external"}, "auth.external": {"issuer": issuer, "secret": SHARED}}
    )
    with server.client() as http:
        who = expect(http.get(f"{CS}/account/whoami", headers=bearer("mas-good")), 200)
        assert who["user_id"] == "@masuser:localhost"
