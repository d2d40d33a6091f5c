"""Threads list: https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidthreads"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, Parameter

from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.rooms.threads import Threads


@get("/_matrix/client/v1/rooms/{room_id:str}/threads")
async def get_thread_roots(
    threads: NamedDependency[Threads],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    include: FromQuery[str | None] = None,
    from_: Annotated[str | None, Parameter(query="from")] = None,
    limit: FromQuery[int | None] = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v1/rooms/{roomId}/threads"""
    return await threads.list(
        requester, path_value(room_id), include=include, from_token=from_, limit=limit
    )


ROUTES = [get_thread_roots]
