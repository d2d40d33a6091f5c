"""Helpers for the push unit tests: events as the evaluator sees them."""

from __future__ import annotations

from typing import Any

from dendrite_lite.push.evaluator import EventView, Power

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!room:example.org"


def view(
    content: dict[str, Any] | None = None,
    *,
    type: str = "m.room.message",
    sender: str = BOB,
    state_key: str | None = None,
    members: int = 3,
    sender_level: float = 0,
    notifications: dict[str, int] | None = None,
) -> EventView:
    event: dict[str, Any] = {
        "event_id": "$event",
        "room_id": ROOM,
        "sender": sender,
        "type": type,
        "content": {"msgtype": "m.text", "body": "hello"} if content is None else content,
        "origin_server_ts": 1,
    }
    if state_key is not None:
        event["state_key"] = state_key
    return EventView(event, members, lambda: Power(sender_level, notifications or {}))
