"""FastLane._answer: whole through the HTTP protocol when it can, else through ASGI."""

from __future__ import annotations

import asyncio
from typing import Any

from dendrite_lite.api.fast_lane import FastLane
from dendrite_lite.api.middleware import CORS_LINES
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.http_protocol import WHOLE_RESPONSE


def _lane() -> FastLane:
    none: Any = None
    return FastLane(
        db=none,
        tokens=none,
        devices=none,
        sync=none,
        sliding_sync=none,
        sending=none,
        max_body=1024,
        path_value=str,
    )


async def _ok() -> Any:
    return {"a": 1}


async def _limited() -> Any:
    raise MatrixError(429, ErrCode.LIMIT_EXCEEDED, "slow down", retry_after_ms=1500)


def _answer(handle: Any, whole: Any = None) -> tuple[int, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"method": "GET", "path": "/x", "state": {}}
    if whole is not None:
        scope["extensions"] = {WHOLE_RESPONSE: whole}
    status = asyncio.run(_lane()._answer(scope, send, handle))
    return status, sent


def test_an_answer_goes_whole_with_its_json_and_cors_lines() -> None:
    taken: list[tuple[int, bytes, bytes]] = []

    def whole(status: int, lines: bytes, body: bytes) -> bool:
        taken.append((status, lines, body))
        return True

    assert _answer(_ok, whole) == (200, [])
    assert taken == [(200, b"content-type: application/json\r\n" + CORS_LINES, b'{"a":1}')]


def test_an_errors_headers_go_whole_too() -> None:
    taken: list[tuple[int, bytes, bytes]] = []

    def whole(status: int, lines: bytes, body: bytes) -> bool:
        taken.append((status, lines, body))
        return True

    status, sent = _answer(_limited, whole)
    assert (status, sent) == (429, [])
    ((_, lines, body),) = taken
    assert b"retry-after: 2\r\n" in lines and lines.endswith(CORS_LINES)
    assert b"content-type: application/json\r\n" in lines
    assert b'"errcode":"M_LIMIT_EXCEEDED"' in body


def test_without_the_extension_or_when_it_declines_the_answer_goes_through_asgi() -> None:
    for whole in (None, lambda status, lines, body: False):
        status, sent = _answer(_ok, whole)
        assert status == 200
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[0]["status"] == 200
        assert (b"content-length", b"7") in sent[0]["headers"]
        assert sent[1]["body"] == b'{"a":1}'
