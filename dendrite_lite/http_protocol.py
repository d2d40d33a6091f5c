"""uvicorn's HTTP/1.1 protocol, with each response's head and body sent in one write.

uvicorn writes a response's status line and headers as soon as the app sends
`http.response.start`, and the body with the next message: two `write` system calls
and, with TCP_NODELAY, two TCP segments for every answer. The client then wakes twice
too: a Python client (httpx, aiohttp, matrix-nio) reads the head, goes back to its
event loop, and reads the body on the next wake-up. In a 500-member room's fan-out that
is a hundred extra segments, and the client side of bench/bench_load.py was measured
spending ~0.8 ms per answer (bench/RESULTS.md, fifth session).

Here the transport holds a response head back until the next write (the body, sent in
the same step of the app's task) and sends both together. A head whose body never
comes in the same step (a HEAD request, a streamed body the app is still producing) is
written when the event loop next turns, so nothing waits longer than that.

It also holds a connection's reading after an answer computed by a big room's fan-out,
until the fan-out's other answers are out (dendrite_lite/fan_out.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dendrite_lite import fan_out


class _OneWritePerResponse:
    """An asyncio transport that holds back a response head until its body is written."""

    __slots__ = ("_head", "_held", "_loop", "_paused", "_release_timer", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        # Reading is paused while uvicorn wants it (flow control) or a fan-out holds it.
        self._paused = False
        self._held = False
        self._release_timer: asyncio.TimerHandle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
            hold = fan_out.answered_by_fan_out.get()
            if hold is not None and not self._held and hold(self._release):
                self._hold()
        elif _is_response_head(data):
            self._head = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self._flush()
        self._transport.writelines(chunks)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            # The peer may have gone before the loop turned: the head goes nowhere.
            if not self._transport.is_closing():
                self._transport.write(head)

    def pause_reading(self) -> None:
        self._paused = True
        if not self._held:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        if not self._held:
            self._transport.resume_reading()

    def _hold(self) -> None:
        if self._transport.is_closing():
            return
        self._held = True
        if not self._paused:
            self._transport.pause_reading()
        self._release_timer = self._loop.call_later(fan_out.HOLD_MAX_S, self._release)

    def _release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        if not self._paused and not self._transport.is_closing():
            self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        # everything else (is_closing, get_extra_info, abort, ...)
        return getattr(self._transport, name)


def _is_response_head(data: bytes | bytearray | memoryview) -> bool:
    return bytes(data[:5]) == b"HTTP/" and bytes(data[-4:]) == b"\r\n\r\n"


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over _OneWritePerResponse (`http=` in uvicorn.Config)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = _OneWritePerResponse(transport, self.loop)
        super().connection_made(wrapped)
