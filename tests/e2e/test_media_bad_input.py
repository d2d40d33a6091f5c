"""Uploads that go wrong: too large (with and without Content-Length), over quota, a
body shorter than its Content-Length, a client that vanishes mid-body, a server killed
mid-upload, bad headers and parameters. Each gets a clear error and leaves no partial
media behind (checked through `dendrite-lite media list`)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import User, expect, register_user

UPLOAD = "/_matrix/media/v3/upload"
LIMITS = {"media": {"max_upload_size": 100_000, "max_bytes_per_user": 250_000}}


@pytest.fixture(scope="module")
def small_server(server_factory: ServerFactory) -> Server:
    return server_factory(LIMITS)


@pytest.fixture
def bob(small_server: Server) -> Iterator[tuple[httpx.Client, User]]:
    with small_server.client() as http:
        yield http, register_user(http)


def media_of(server: Server, user: User) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(
        server.cli("media", "list", "--json", user.user_id).stdout
    )
    return listed


def raw_request(server: Server, head: str, body: bytes, *, close_early: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        if close_early:
            sock.shutdown(socket.SHUT_WR)
        try:
            return sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return b""


def test_oversized_uploads_are_refused(
    small_server: Server, bob: tuple[httpx.Client, User]
) -> None:
    http, user = bob
    assert expect(http.get("/_matrix/client/v1/media/config", headers=user.headers), 200) == {
        "m.upload.size": 100_000
    }
    big = os.urandom(100_001)
    expect(http.post(UPLOAD, content=big, headers=user.headers), 413, "M_TOO_LARGE")

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield os.urandom(10_000)

    expect(http.post(UPLOAD, content=chunks(), headers=user.headers), 413, "M_TOO_LARGE")
    exact = expect(http.post(UPLOAD, content=big[:100_000], headers=user.headers), 200)
    assert exact["content_uri"].startswith("mxc://")
    assert [m["size"] for m in media_of(small_server, user)] == [100_000]


def test_quota_per_user(small_server: Server, bob: tuple[httpx.Client, User]) -> None:
    http, user = bob
    for _ in range(2):
        expect(http.post(UPLOAD, content=os.urandom(100_000), headers=user.headers), 200)
    expect(http.post(UPLOAD, content=os.urandom(60_000), headers=user.headers), 403, "M_FORBIDDEN")
    expect(http.post(UPLOAD, content=os.urandom(50_000), headers=user.headers), 200)
    assert sum(m["size"] for m in media_of(small_server, user)) == 250_000


def test_body_shorter_than_content_length(
    small_server: Server, bob: tuple[httpx.Client, User]
) -> None:
    _http, user = bob
    head = (
        f"POST {UPLOAD} HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {user.access_token}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 50000\r\n\r\n"
    )
    answer = raw_request(small_server, head, os.urandom(20_000), close_early=True)
    assert not answer.startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 5
    while media_of(small_server, user) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert media_of(small_server, user) == []


def test_bad_headers_and_parameters(bob: tuple[httpx.Client, User]) -> None:
    http, user = bob
    bad_type = {**user.headers, "Content-Type": "not a type"}
    expect(http.post(UPLOAD, content=b"x", headers=bad_type), 400, "M_INVALID_PARAM")
    expect(
        http.post(UPLOAD, content=b"x", params={"filename": "a\nb"}, headers=user.headers),
        400,
        "M_INVALID_PARAM",
    )
    expect(
        http.post(UPLOAD, content=b"x", params={"filename": "x" * 300}, headers=user.headers),
        400,
        "M_INVALID_PARAM",
    )
    expect(
        http.get(
            "/_matrix/client/v1/media/download/localhost/abc",
            params={"timeout_ms": "soon"},
            headers=user.headers,
        ),
        400,
        "M_INVALID_PARAM",
    )
    expect(
        http.get(
            "/_matrix/client/v1/media/download/localhost/abc",
            params={"timeout_ms": -1},
            headers=user.headers,
        ),
        400,
        "M_INVALID_PARAM",
    )


def test_a_server_killed_mid_upload_keeps_no_partial_media(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(shared=False)
    with server.client() as http:
        user = register_user(http)
        reserved = expect(http.post("/_matrix/media/v1/create", headers=user.headers), 200)
    mxc = reserved["content_uri"].removeprefix("mxc://")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as direct,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as reserved_put,
    ):
        for sock, method, path in (
            (direct, "POST", UPLOAD),
            (reserved_put, "PUT", f"/_matrix/media/v3/upload/{mxc}"),
        ):
            sock.sendall(
                (
                    f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
                    f"Authorization: Bearer {user.access_token}\r\n"
                    "Content-Length: 8000000\r\n\r\n"
                ).encode()
                + os.urandom(3_000_000)
            )
        time.sleep(1.0)  # a few chunks are written
        server.kill()
    server.start()
    listed = media_of(server, user)
    # The direct upload is gone; the reservation is pending again and can be filled.
    assert [(m["media_id"], m["state"], m["size"]) for m in listed] == [
        (mxc.split("/")[1], "pending", 0)
    ]
    with server.client() as http:
        response = http.put(
            f"/_matrix/media/v3/upload/{mxc}", content=b"done", headers=user.headers
        )
        expect(response, 200)
        assert (
            http.get(f"/_matrix/client/v1/media/download/{mxc}", headers=user.headers).content
            == b"done"
        )
