"""GET /notifications: https://spec.matrix.org/latest/client-server-api/#listing-notifications"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery, Parameter

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.push.service import Notifications


@get("/_matrix/client/v3/notifications")
async def get_notifications(
    notifications: NamedDependency[Notifications],
    requester: NamedDependency[Requester],
    from_: Annotated[str | None, Parameter(query="from")] = None,
    limit: FromQuery[int | None] = None,
    only: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v3/notifications"""
    return await notifications.list(requester, from_, limit, only)


ROUTES = [get_notifications]
