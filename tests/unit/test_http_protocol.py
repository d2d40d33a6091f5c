"""One write per response: dendrite_lite.http_protocol under a real uvicorn server."""

from __future__ import annotations

import asyncio
import gc
import http.client
import socket
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from dendrite_lite import fan_out
from dendrite_lite.http_protocol import (
    WHOLE_RESPONSE,
    HttpProtocol,
    _OneWritePerResponse,
    _WholeResponse,
)

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

    def pause_reading(self) -> None:
        self.calls.append(("pause", b""))

    def resume_reading(self) -> None:
        self.calls.append(("resume", b""))


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


# -- a fan-out's answers hold their connections' reading (dendrite_lite/fan_out.py) ----------


class _FanOut:
    """Stands for the database: whether a fan-out is under way, and whom to release."""

    def __init__(self, under_way: bool = True) -> None:
        self.under_way = under_way
        self.waiting: list[fan_out.Release] = []

    def hold(self, release: fan_out.Release) -> bool:
        if self.under_way:
            self.waiting.append(release)
        return self.under_way

    def end(self) -> None:
        for release in self.waiting:
            release()


def _answer(wrapped: _OneWritePerResponse) -> None:
    wrapped.write(HEAD)
    wrapped.write(b"{}")


def _fan_out_connection() -> tuple[_Transport, _OneWritePerResponse, _FanOut]:
    """In a running loop: a connection whose answers come from a fan-out under way."""
    inner = _Transport()
    wrapped = _OneWritePerResponse(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    fan = _FanOut()
    fan_out.answered_by_fan_out.set(fan.hold)
    return inner, wrapped, fan


def test_a_fan_outs_answer_holds_the_connection_until_the_fan_out_ends() -> None:
    async def main() -> list[tuple[str, bytes]]:
        inner, wrapped, fan = _fan_out_connection()
        _answer(wrapped)
        assert inner.calls[-1] == ("pause", b"")
        fan.end()
        fan.end()  # a second release changes nothing
        return inner.calls

    assert asyncio.run(main()) == [("writelines", HEAD + b"{}"), ("pause", b""), ("resume", b"")]


def test_other_answers_and_answers_after_the_fan_out_do_not_hold() -> None:
    async def main() -> list[tuple[str, bytes]]:
        inner = _Transport()
        wrapped = _OneWritePerResponse(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        _answer(wrapped)  # not a fan-out's answer
        fan_out.answered_by_fan_out.set(_FanOut(under_way=False).hold)
        _answer(wrapped)  # its fan-out is over already
        return inner.calls

    assert asyncio.run(main()) == [("writelines", HEAD + b"{}")] * 2


def test_a_hold_ends_after_hold_max_s_even_if_the_fan_out_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fan_out, "HOLD_MAX_S", 0.01)

    async def main() -> list[tuple[str, bytes]]:
        inner, wrapped, fan = _fan_out_connection()
        _answer(wrapped)
        await asyncio.sleep(0.05)
        fan.end()  # too late: nothing more happens
        return inner.calls

    assert asyncio.run(main())[1:] == [("pause", b""), ("resume", b"")]


def test_uvicorns_own_pauses_and_a_hold_keep_reading_paused_until_both_end() -> None:
    async def main() -> list[list[tuple[str, bytes]]]:
        inner, wrapped, fan = _fan_out_connection()
        steps = []
        wrapped.pause_reading()  # uvicorn's flow control, before the answer
        _answer(wrapped)  # held too: already paused
        steps.append(list(inner.calls))
        fan.end()  # uvicorn still wants it paused
        steps.append(list(inner.calls))
        wrapped.resume_reading()
        steps.append(list(inner.calls))
        inner.calls.clear()
        fan2 = _FanOut()
        fan_out.answered_by_fan_out.set(fan2.hold)
        _answer(wrapped)
        wrapped.pause_reading()
        wrapped.resume_reading()  # uvicorn's pause and resume while the hold lasts
        steps.append(list(inner.calls))
        fan2.end()
        steps.append(list(inner.calls))
        return steps

    pause, resume, answer = ("pause", b""), ("resume", b""), ("writelines", HEAD + b"{}")
    assert asyncio.run(main()) == [
        [pause, answer],
        [pause, answer],
        [pause, answer, resume],
        [answer, pause],
        [answer, pause, resume],
    ]


def test_a_closed_connection_is_not_held() -> None:
    async def main() -> list[tuple[str, bytes]]:
        inner, wrapped, fan = _fan_out_connection()
        wrapped.write(HEAD)
        inner.closed = True  # the peer left as the answer went out
        wrapped.write(b"{}")
        fan.end()
        return inner.calls

    assert asyncio.run(main()) == [("writelines", HEAD + b"{}")]


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
# What WHOLE_RESPONSE said when the app tried it after starting an answer through ASGI.
LATE_WHOLE: list[bool] = []


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
    if scope["path"] == "/whole":
        whole = scope["extensions"][WHOLE_RESPONSE]
        assert whole(201, b"content-type: text/plain\r\nx-one: 1\r\n", b"whole:" + body)
        return
    if scope["path"] == "/late-whole":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        LATE_WHOLE.append(scope["extensions"][WHOLE_RESPONSE](200, b"", b"no"))
        await send({"type": "http.response.body", "body": b"asgi"})
        return
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


@pytest.mark.parametrize(
    ("path", "status", "length"), [("/", 200, "5"), ("/whole", 201, "6")], ids=["asgi", "whole"]
)
def test_a_head_request_is_answered_with_the_head_alone(
    port: int, path: str, status: int, length: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("HEAD", path)
    response = conn.getresponse()
    assert response.status == status and response.getheader("content-length") == length
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


# -- a response handed over whole (WHOLE_RESPONSE) --------------------------------------------


def _read_response(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_a_whole_response_is_one_call_with_its_head_and_keeps_the_connection(port: int) -> None:
    CALLS.clear()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for body in (b"a", b"bc"):
        conn.request("POST", "/whole", body=body)
        response = conn.getresponse()
        assert response.status == 201
        assert response.getheader("content-type") == "text/plain"
        assert response.getheader("x-one") == "1"
        assert response.getheader("content-length") == str(len(b"whole:" + body))
        assert response.getheader("date")  # uvicorn's default headers are kept
        assert response.read() == b"whole:" + body
    conn.request("GET", "/")  # and an ASGI answer after it on the same connection
    assert conn.getresponse().read() == b"hello"
    conn.close()
    assert CALLS == ["writelines"] * 3


def test_a_whole_response_to_http_1_0_closes_the_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /whole HTTP/1.0\r\nhost: x\r\n\r\n")
        received = _read_response(sock)  # ends: the server closed it
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 ")
    assert b"\r\nconnection: close" in head
    assert body == b"whole:"


def test_a_whole_response_is_refused_once_an_answer_began(port: int) -> None:
    LATE_WHOLE.clear()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/late-whole")
    assert conn.getresponse().read() == b"asgi"
    conn.close()
    assert LATE_WHOLE == [False]


class _Flow:
    write_paused = False


class _Cycle:
    """The parts of uvicorn's RequestResponseCycle that _WholeResponse touches."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.flow = _Flow()
        self.response_started = False
        self.response_complete = False
        self.disconnected = False
        self.waiting_for_100_continue = False
        self.keep_alive = True
        self.default_headers = [(b"date", b"today")]
        self.scope = {"method": "GET"}
        self.message_event = asyncio.Event()
        self.completed = 0

    def on_response(self) -> None:
        self.completed += 1


def test_a_whole_response_waits_for_uvicorns_flow_control_and_skips_a_gone_peer() -> None:
    async def main() -> None:
        inner = _Transport()
        wrapped = _OneWritePerResponse(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        cycle = _Cycle(wrapped)
        whole = _WholeResponse(cycle)  # type: ignore[arg-type]
        cycle.flow.write_paused = True  # the peer is slow to read: ASGI's send must wait
        assert whole(200, b"", b"{}") is False
        assert not cycle.response_started and inner.calls == []
        cycle.flow.write_paused = False
        cycle.disconnected = True  # gone: nothing to write, as uvicorn's send
        assert whole(200, b"", b"{}") is True
        assert inner.calls == [] and cycle.completed == 0
        cycle.disconnected = False
        assert whole(200, b"x-a: b\r\n", b"{}") is True
        assert inner.calls == [
            (
                "writelines",
                b"HTTP/1.1 200 OK\r\ndate: today\r\nx-a: b\r\ncontent-length: 2\r\n\r\n{}",
            )
        ]
        assert cycle.response_complete and cycle.message_event.is_set()
        assert cycle.completed == 1 and not inner.closed

    asyncio.run(main())


def test_a_whole_response_does_not_keep_its_cycle_alive() -> None:
    """The scope holds the extension and the cycle holds the scope: the extension holds
    the cycle weakly, so a request's objects go with their last reference, not at the
    collector's next pass."""
    gc.disable()
    try:
        cycle = _Cycle(_Transport())
        whole = _WholeResponse(cycle)  # type: ignore[arg-type]
        cycle.scope["extensions"] = {WHOLE_RESPONSE: whole}  # type: ignore[dict-item]
        gone = weakref.ref(cycle)
        del cycle
        assert gone() is None
        assert whole(200, b"", b"{}") is True  # nobody to answer: nothing happens
    finally:
        gc.enable()
