from __future__ import annotations

import pytest

from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.errors import MatrixError


def test_burst_then_limited_with_retry_after() -> None:
    limiter = RateLimiter(per_second=0.5, burst=3)
    for _ in range(3):
        limiter.check_and_spend("k")
    with pytest.raises(MatrixError) as info:
        limiter.check_and_spend("k")
    assert info.value.status == 429
    assert info.value.errcode == "M_LIMIT_EXCEEDED"
    assert 0 < info.value.extra["retry_after_ms"] <= 2000
    limiter.check_and_spend("other")  # keys are independent


def test_disabled_never_limits() -> None:
    limiter = RateLimiter(per_second=0.0, burst=0, enabled=False)
    for _ in range(100):
        limiter.check_and_spend("k")
