"""Prometheus metrics, one registry per server instance (tests run several in a process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# The *_created series double the output for no use on a single process.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dendrite_http_requests",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dendrite_http_request_seconds",
            "HTTP request latency by endpoint",
            ["endpoint", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "dendrite_db_commit_seconds",
            "Time to run and commit one group-commit batch of writes",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_batch = Histogram(
            "dendrite_db_commit_batch_size",
            "Units of work per committed transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.long_polls = Gauge(
            "dendrite_active_long_polls", "Requests waiting in a long-poll", registry=self.registry
        )
        # (endpoint, method, status) -> the two series a request adds to. `labels()` checks
        # and joins its arguments under a lock on every call; endpoints are route
        # templates, so there are only so many keys.
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request_done(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (
                self.requests.labels(endpoint, method, str(status)),
                self.latency.labels(endpoint, method),
            )
        count, latency = series
        count.inc()
        latency.observe(seconds)

    def observe_commit(self, seconds: float, batch_size: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_batch.observe(batch_size)

    def track_long_polls(self, count: Callable[[], int]) -> None:
        self.long_polls.set_function(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
