"""Recently used access tokens in memory, so that authenticating needs no database hop.

DESIGN.md: on hot paths, tiny indexed reads are better served from caches kept by the
writer than by a thread hop each. Every request authenticates, so this is the hottest.

Staleness is what matters for a token cache: a logged-out token must stop working at
once. Triggers (schema delta 0007) bump an epoch row on any change that could make a
cached answer wrong; the writer reads the epoch after each commit and empties the cache
when it moved. A read that started before such a commit cannot put its (old) answer in
afterwards: `put` only takes an answer read under the current generation. Changes made
by another process (the CLI beside a running server) are seen by the next commit of the
server's own writer or, at the latest, when the entry's TTL runs out.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

import apsw

Row = TypeVar("Row")

# Longer than a long-poll's timeout (30 s for most clients): an idle client's next poll
# still finds its token. Only changes made by another process while this one commits
# nothing can outlive their commit by up to this long.
TTL_S = 60.0
MAX_ENTRIES = 50_000


def read_epoch(conn: apsw.Connection) -> int:
    for (value,) in conn.execute("SELECT value FROM cache_epochs WHERE name = 'access_tokens'"):
        return int(value)
    return 0


class AccessTokenCache(Generic[Row]):
    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.generation = 0
        self._epoch: int | None = None
        self._entries: dict[bytes, tuple[Row, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> Row | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        row, expires = entry
        if time.monotonic() >= expires:
            return None
        return row

    def put(self, digest: bytes, row: Row, generation: int) -> None:
        """Remember `row`, read while `generation` was current (else drop it: stale)."""
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (row, time.monotonic() + self.ttl_s)

    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def after_commit(self, conn: apsw.Connection) -> None:
        """Run by the writer after every commit: empty the cache if the epoch moved."""
        try:
            epoch: int | None = read_epoch(conn)
        except apsw.Error:
            epoch = None  # cannot tell: assume the worst
        if epoch is None or epoch != self._epoch:
            self._epoch = epoch
            self.invalidate()
