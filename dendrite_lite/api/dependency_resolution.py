"""Resolve a handler's dependencies one after another instead of in a task group.

Litestar resolves the dependencies of one level concurrently, in an anyio task group per
request. Ours are constants (services) plus one database read (the requester), so the
task group is pure overhead: about a fifth of the CPU of an authenticated request on
one core (profiled with py-spy; see bench/RESULTS.md). Awaiting them in turn gives the
same results, since none of them waits on another of its level.
"""

from __future__ import annotations

from typing import Any

from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection


async def _resolve_dependencies_in_turn(
    self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    return cleanup_group


def install() -> None:
    """Replace Litestar's concurrent resolution (idempotent; checked by the test suite)."""
    KwargsModel.resolve_dependencies = _resolve_dependencies_in_turn  # type: ignore[method-assign]
