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

And it offers the app a way to hand over a whole response at once (`WHOLE_RESPONSE` in the
scope's extensions): the status, the header lines already encoded, and the body. The
three requests of the message path (api/fast_lane.py) answer that way; uvicorn's ASGI
`send` checks and lowercases every header of every answer and takes two calls to do
it, which in a big room's fan-out is paid once per member.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from dendrite_lite import fan_out
from dendrite_lite.notifier import Departure, departure

# scope["extensions"][WHOLE_RESPONSE](status, header_lines, body) -> bool; header_lines
# are b"name: value\r\n" lines (lowercase names, valid values, no content-length: added
# here). False: not taken (the answer has begun, or the peer is slow to read and uvicorn's
# flow control must wait); send it through ASGI.
WHOLE_RESPONSE = "dendrite.whole_response"
WholeResponse = Callable[[int, bytes, bytes], bool]
# scope["extensions"][DEPARTURE]: a notifier.Departure (watch_departure); its `leave()` is
# called if the connection goes before the response is complete.
DEPARTURE = "dendrite.departure"


def watch_departure(scope: dict[str, Any]) -> None:
    """A long-poll in this request stops waiting when its client goes (notifier.Departure).
    Called in the request's task: uvicorn gives each its own context, so the variable is
    this request's alone."""
    extensions = scope.get("extensions")
    if extensions is not None:
        client = Departure()
        extensions[DEPARTURE] = client
        departure.set(client)


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
            self._hold_if_answered_by_fan_out()
        elif _is_response_head(data):
            self._head = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self._flush()
        self._transport.writelines(chunks)

    def write_response(self, head: bytes, body: bytes) -> None:
        """A whole response: one call, and the fan-out's hold as after `write`."""
        self._flush()
        self._transport.writelines((head, body))
        self._hold_if_answered_by_fan_out()

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

    def _hold_if_answered_by_fan_out(self) -> None:
        """After an answer: a fan-out's answer holds the connection (fan_out.py)."""
        hold = fan_out.answered_by_fan_out.get()
        if hold is not None and not self._held and hold(self._release):
            self._hold()

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

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
            client = scope.get("extensions", {}).get(DEPARTURE)
            if client is not None:
                client.leave()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # An upgrade request has no cycle of its own (uvicorn answered it).
        if cycle is not None and cycle.scope is self.scope:
            scope: dict[str, Any] = self.scope  # type: ignore[assignment]
            scope.setdefault("extensions", {})[WHOLE_RESPONSE] = _WholeResponse(cycle)


class _WholeResponse:
    """What uvicorn's `send` does for a response given whole (status, headers, and a body
    of known length), without its per-header work: the lines come from our own code.

    It holds its cycle weakly: the cycle holds the scope that holds this, and a cycle of
    references per request waits for the collector (RSS grew by 3 MiB over a seeding of
    500 rooms)."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = weakref.ref(cycle)

    def __call__(self, status: int, header_lines: bytes, body: bytes) -> bool:
        cycle = self._cycle()
        if cycle is None:  # the request is over: nobody to answer
            return True
        if cycle.response_started or cycle.flow.write_paused:
            return False
        if cycle.disconnected:
            return True  # as uvicorn's send: nothing to write to
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        head = [STATUS_LINE[status]]
        head.extend(b"%s: %s\r\n" % pair for pair in cycle.default_headers)
        head.append(header_lines)
        head.append(b"content-length: %d\r\n" % len(body))
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if cycle.scope["method"] == "HEAD":
            body = b""
        transport: Any = cycle.transport
        transport.write_response(b"".join(head), body)
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            transport.close()
        cycle.on_response()
        return True
