"""Simplified sliding sync (MSC4186), in both shapes, over one engine.

https://github.com/matrix-org/matrix-spec-proposals/blob/main/proposals/4186-simplified-sliding-sync.md
The unstable endpoint is what Element X (matrix-rust-sdk) and matrix-js-sdk speak today;
the stable one is the accepted text. The differences are only of shape and handled here:
where parameters travel, `ranges` vs `range`, the required_state format, and the names of
a few room fields (`timeline_events`, `stripped_state`, `expanded_timeline`; no
notification counts in the room object).
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import post
from litestar.di import NamedDependency
from litestar.params import FromQuery

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.sliding_sync import requests
from dendrite_lite.sliding_sync.room_lists import lists_holding
from dendrite_lite.sliding_sync.service import SlidingSync, SlidingSyncResult

_STABLE_RENAMED = {
    "timeline": "timeline_events",
    "invite_state": "stripped_state",
    "knock_state": "stripped_state",
    "unstable_expanded_timeline": "expanded_timeline",
}
_STABLE_DROPPED = frozenset({"notification_count", "highlight_count", "unread_notifications"})


def unstable_response(result: SlidingSyncResult) -> dict[str, Any]:
    lists: dict[str, Any] = {}
    for name, found in result.lists.items():
        ops = [
            {"op": "SYNC", "range": list(window), "room_ids": room_ids}
            for window, room_ids in found.windows
            if window is not None
        ]
        lists[name] = {"count": found.count, "ops": ops} if ops else {"count": found.count}
    response: dict[str, Any] = {
        "pos": result.pos,
        "lists": lists,
        "rooms": result.rooms,
        "extensions": result.extensions,
    }
    if result.txn_id is not None:
        response["txn_id"] = result.txn_id
    return response


def _stable_room(room_id: str, room: dict[str, Any], in_lists: list[str] | None) -> dict[str, Any]:
    shaped = {_STABLE_RENAMED.get(k, k): v for k, v in room.items() if k not in _STABLE_DROPPED}
    if in_lists:
        shaped["lists"] = in_lists
    return shaped


def _stable_response(result: SlidingSyncResult) -> dict[str, Any]:
    in_lists = lists_holding(result.lists, result.rooms)
    return {
        "pos": result.pos,
        "lists": {name: {"count": found.count} for name, found in result.lists.items()},
        "rooms": {
            room_id: _stable_room(room_id, room, in_lists.get(room_id))
            for room_id, room in result.rooms.items()
        },
        "extensions": result.extensions,
    }


@post("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", status_code=200)
async def sliding_sync_unstable(
    sliding_sync: NamedDependency[SlidingSync],
    requester: NamedDependency[Requester],
    data: Any = None,
    pos: FromQuery[str | None] = None,
    timeout: FromQuery[int] = 0,  # noqa: ASYNC109 - the MSC's long-poll parameter
    set_presence: FromQuery[Literal["offline", "online", "unavailable"]] = "online",
) -> dict[str, Any]:
    """POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync"""
    if timeout < 0:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "timeout must not be negative")
    request = requests.parse_unstable(data, requester.user_id)
    result = await sliding_sync.sync(
        requester, request, pos=pos, timeout_ms=timeout, set_presence=set_presence
    )
    return unstable_response(result)


@post("/_matrix/client/v4/sync", status_code=200)
async def sliding_sync_stable(
    sliding_sync: NamedDependency[SlidingSync],
    requester: NamedDependency[Requester],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_matrix/client/v4/sync"""
    body, request = requests.parse_stable(data, requester.user_id)
    result = await sliding_sync.sync(
        requester, request, pos=body.pos, timeout_ms=body.timeout, set_presence=body.set_presence
    )
    return _stable_response(result)


ROUTES = [sliding_sync_unstable, sliding_sync_stable]
