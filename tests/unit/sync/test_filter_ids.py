"""FilterIds: stored filters read once per (user, ID), and no more kept than its size."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.sync.filter_ids import MAX_INLINE, FilterIds


class _Reads:
    """Stands in for Database.read: answers from a dict and counts the reads."""

    def __init__(self, stored: dict[tuple[str, int], bytes]) -> None:
        self.stored = stored
        self.reads = 0

    async def read(self, fn: Any) -> Any:
        self.reads += 1
        return fn(self)

    def execute(self, _sql: str, params: tuple[str, int]) -> list[tuple[bytes]]:
        found = self.stored.get(params)
        return [] if found is None else [(found,)]


def test_filters_are_read_once_per_user_and_id_and_bounded() -> None:
    reads = _Reads({("@a:x", 0): b'{"room":{"timeline":{"limit":1}}}', ("@b:x", 0): b"{}"})
    ids = FilterIds(reads, size=1)  # type: ignore[arg-type]

    async def run() -> None:
        first = await ids.get("@a:x", 0)
        assert first is not None and first.room.timeline.limit == 1
        assert await ids.get("@a:x", 0) is first
        assert reads.reads == 1
        other = await ids.get("@b:x", 0)
        assert other is not None and other.room.timeline.limit is None
        assert await ids.get("@c:x", 0) is None
        assert await ids.get("@a:x", 0) is not first  # pushed out by @b's: read again
        assert reads.reads == 4

    asyncio.run(run())


def test_inline_filters_are_decoded_once_and_bad_ones_every_time() -> None:
    ids = FilterIds(_Reads({}))  # type: ignore[arg-type]
    raw = '{"room":{"timeline":{"limit":10}}}'
    first = ids.inline(raw)
    assert first.room.timeline.limit == 10
    assert ids.inline(raw) is first
    assert ids.inline('{"room":{"timeline":{"limit":5}}}') is not first
    for bad in ('{"room":{"timeline":{"limit":-1}}}', '{"room":', '{"room":{"rooms":["x"]}}'):
        for _ in range(2):
            with pytest.raises(MatrixError):
                ids.inline(bad)
    huge = '{"room":{"rooms":[' + ",".join(f'"!r{i}:x"' for i in range(2000)) + "]}}"
    assert ids.inline(huge) is not ids.inline(huge)  # too long to keep


def test_inline_filters_kept_are_bounded() -> None:
    ids = FilterIds(_Reads({}))  # type: ignore[arg-type]
    first = ids.inline('{"room":{"timeline":{"limit":0}}}')
    for limit in range(1, MAX_INLINE + 1):
        ids.inline(f'{{"room":{{"timeline":{{"limit":{limit}}}}}}}')
    assert ids.inline('{"room":{"timeline":{"limit":0}}}') is not first
