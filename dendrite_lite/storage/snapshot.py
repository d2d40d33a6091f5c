"""Reads shared by the units of one read transaction.

A big room's message wakes a hundred long-polls, and storage/db.py computes their answers
in batches that share one read snapshot. Several of their reads then have the same
arguments: the stream position, the rooms with new events or receipts since the position
they all had, the room's new events and their children. Within one snapshot such a read
cannot give another answer, so the first unit's answer serves the others (SQLite's
statement profile of a 100-client fan-out in bench/RESULTS.md, seventh session). A
foreground read is one unit in its own transaction, and shares them with itself: a sliding
sync answer asks for the rooms with events since its pos twice (for its room list and for
its rooms), the same question whenever the list was last brought up to that pos.

Only reads whose answers are immutable values take part: the units share them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import apsw

T = TypeVar("T")

# id(connection) -> its memo, while a shared transaction is open on it. Each reader thread
# has its own connection, so no two threads touch one memo.
_memos: dict[int, dict[Hashable, object]] = {}


@contextmanager
def shared(conn: apsw.Connection) -> Iterator[None]:
    """Within this block (one read transaction), `once` answers repeated reads from memory."""
    _memos[id(conn)] = {}
    try:
        yield
    finally:
        del _memos[id(conn)]


def once(conn: apsw.Connection, key: Hashable, read: Callable[[], T]) -> T:
    """`read()`, or its answer to an earlier unit of the same shared transaction."""
    memo = _memos.get(id(conn))
    if memo is None:
        return read()
    if key in memo:
        return memo[key]  # type: ignore[return-value]
    value = memo[key] = read()
    return value
