"""In-memory token buckets: https://spec.matrix.org/latest/client-server-api/#rate-limiting

Kept in memory on purpose: a restart forgetting them is harmless, and a database write
per attempt would be a cost an attacker could impose.
"""

from __future__ import annotations

import math
import time

from dendrite_lite.errors import limit_exceeded

_MAX_KEYS = 100_000


class RateLimiter:
    def __init__(self, per_second: float, burst: int, *, enabled: bool = True) -> None:
        self.per_second = per_second
        self.burst = float(burst)
        self.enabled = enabled
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    def _tokens(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - updated) * self.per_second)

    def check(self, key: str) -> None:
        """Raise M_LIMIT_EXCEEDED if `key` has no token left; does not spend one."""
        if not self.enabled:
            return
        now = time.monotonic()
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            wait = (1.0 - tokens) / self.per_second if self.per_second > 0 else 3600.0
            raise limit_exceeded(math.ceil(wait * 1000))

    def spend(self, key: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if len(self._buckets) >= _MAX_KEYS:
            self._forget_full(now)
        self._buckets[key] = (self._tokens(key, now) - 1.0, now)

    def check_and_spend(self, key: str) -> None:
        self.check(key)
        self.spend(key)

    def _forget_full(self, now: float) -> None:
        full = [k for k in self._buckets if self._tokens(k, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= _MAX_KEYS:
            self._buckets.clear()
