"""One write per response: dendrite_lite.http_protocol under a real uvicorn server."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from dendrite_lite.http_protocol import HttpProtocol, _OneWritePerResponse

# -- the transport wrapper alone ------------------------------------------------------------


class _Transport:
    """Records what reaches the socket's transport, one entry per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, chunks: Any) -> None:
        self.calls.append(("writelines", b"".join(chunks)))

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def close(self) -> None:
        self.closed = True
        self.calls.append(("close", b""))

    def is_closing(self) -> bool:
        return self.closed


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_a_head_and_its_body_go_out_in_one_call() -> None:
    async def main() -> list[tuple[str, bytes]]:
        inner = _Transport()
        wrapped = _OneWritePerResponse(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        wrapped.write(HEAD)
        assert inner.calls == []  # held until the body
        wrapped.write(b"{}")
        await asyncio.sleep(0)  # the held head's fallback flush finds nothing left
        return inner.calls

    assert asyncio.run(main()) == [("writelines", HEAD + b"{}")]


def test_a_head_without_a_body_goes_out_when_the_loop_turns() -> None:
    async def main() -> list[tuple[str, bytes]]:
        inner = _Transport()
        wrapped = _OneWritePerResponse(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0)
        return inner.calls

    assert asyncio.run(main()) == [("write", b"HTTP/1.1 100 Continue\r\n\r\n")]


@pytest.mark.parametrize("finish", ["close", "write_eof", "writelines"])
def test_a_held_head_goes_out_before_the_connection_ends(finish: str) -> None:
    async def main() -> list[tuple[str, bytes]]:
        inner = _Transport()
        wrapped = _OneWritePerResponse(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        wrapped.write(HEAD)
        if finish == "writelines":
            wrapped.writelines([b"o", b"k"])
        else:
            getattr(wrapped, finish)()
        await asyncio.sleep(0)
        return inner.calls

    calls = asyncio.run(main())
    assert calls[0] == ("write", HEAD)
    assert len(calls) == 2 and calls[1][0] == finish.replace("write_eof", "eof")


def test_a_held_head_is_dropped_if_the_peer_went_before_the_loop_turned() -> None:
    async def main() -> list[tuple[str, bytes]]:
        inner = _Transport()
        wrapped = _OneWritePerResponse(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        wrapped.write(HEAD)
        inner.closed = True  # the connection was lost: the transport closed itself
        await asyncio.sleep(0)
        return inner.calls

    assert asyncio.run(main()) == []


def test_other_writes_pass_straight_through_and_the_rest_is_delegated() -> None:
    async def main() -> tuple[list[tuple[str, bytes]], bool]:
        inner = _Transport()
        wrapped = _OneWritePerResponse(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        wrapped.write(b"5\r\nhello\r\n")  # a chunk of a streamed body
        wrapped.write(b"HTTP/1.1 200 OK\r\n")  # not a whole head: not held
        wrapped.close()
        return inner.calls, wrapped.is_closing()

    calls, closing = asyncio.run(main())
    assert calls == [
        ("write", b"5\r\nhello\r\n"),
        ("write", b"HTTP/1.1 200 OK\r\n"),
        ("close", b""),
    ]
    assert closing


# -- under uvicorn, over a real socket -------------------------------------------------------


class _Recorder:
    """Between the wrapper and uvicorn's real transport: counts the calls that reach it."""

    def __init__(self, transport: asyncio.Transport, calls: list[str]) -> None:
        self._transport = transport
        self._calls = calls

    def write(self, data: bytes) -> None:
        self._calls.append("write")
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self._calls.append("writelines")
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


CALLS: list[str] = []


class _RecordingProtocol(HttpProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Recorder(transport, CALLS))  # type: ignore[arg-type]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    answer = b"echo:" + body if body else b"hello"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    config = uvicorn.Config(
        _app,
        host="127.0.0.1",
        port=free,
        http=_RecordingProtocol,
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    yield free
    server.should_exit = True
    thread.join(5)


def test_keep_alive_responses_are_one_call_each(port: int) -> None:
    CALLS.clear()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello")
    conn.request("POST", "/", body=b"abc")
    response = conn.getresponse()
    assert response.read() == b"echo:abc"
    conn.close()
    assert CALLS == ["writelines"] * 4


def test_a_head_request_is_answered_with_the_head_alone(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("HEAD", "/")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-length") == "5"
    assert response.read() == b""
    conn.request("GET", "/")  # the connection is still in step
    assert conn.getresponse().read() == b"hello"
    conn.close()


def test_a_streamed_body_arrives_whole(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/stream")
    response = conn.getresponse()
    assert response.getheader("transfer-encoding") == "chunked"
    assert response.read() == b"one,two,three"
    conn.close()


def test_expect_100_continue_gets_its_interim_answer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"xyz")
        received = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        while not received.endswith(b"echo:xyz"):
            chunk = sock.recv(1024)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_malformed_request_gets_uvicorns_400_and_the_connection_closes(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        received = b""
        while chunk := sock.recv(1024):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 ")
