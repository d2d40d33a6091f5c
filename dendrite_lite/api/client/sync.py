"""GET /sync and filters in it: https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3sync"""

from __future__ import annotations

from typing import Any, Literal

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.filters import Filter
from dendrite_lite.sync.filter_ids import NO_FILTER, FilterIds
from dendrite_lite.sync.service import Sync


async def load_filter(filter_ids: FilterIds, user_id: str, raw: str | None) -> Filter:
    """The `filter` parameter: JSON when it starts with '{', else a filter ID."""
    if raw is None or raw == "":
        return NO_FILTER
    if raw.startswith("{"):
        return filter_ids.inline(raw)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "filter is neither JSON nor a filter ID")
    found = await filter_ids.get(user_id, int(raw))
    if found is None:
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"No filter with ID {raw}")
    return found


@get("/_matrix/client/v3/sync")
async def sync(
    sync_service: NamedDependency[Sync],
    requester: NamedDependency[Requester],
    since: FromQuery[str | None] = None,
    timeout: FromQuery[int] = 0,  # noqa: ASYNC109 - the spec's long-poll parameter
    full_state: FromQuery[bool] = False,
    filter: FromQuery[str | None] = None,
    set_presence: FromQuery[Literal["offline", "online", "unavailable"]] = "online",
    use_state_after: FromQuery[bool] = False,
) -> dict[str, Any]:
    """GET /_matrix/client/v3/sync"""
    if timeout < 0:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "timeout must not be negative")
    sync_filter = await load_filter(sync_service.filter_ids, requester.user_id, filter)
    return await sync_service.sync(
        requester,
        since=since,
        timeout_ms=timeout,
        full_state=full_state,
        sync_filter=sync_filter,
        set_presence=set_presence,
        use_state_after=use_state_after,
    )
