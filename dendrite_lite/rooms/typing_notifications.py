"""Typing notifications: https://spec.matrix.org/latest/client-server-api/#typing-notifications

Kept in memory only: typing is worth nothing after a restart. Every change bumps a
serial; a sync token carries the serial it has seen. Each entry expires on its own timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from dendrite_lite.notifier import Notifier

MAX_TIMEOUT_MS = 120_000


class TypingNotifications:
    def __init__(
        self, notifier: Notifier, members_of: Callable[[str], Awaitable[list[str]]]
    ) -> None:
        self.serial = 0
        self._typing: dict[str, dict[str, asyncio.TimerHandle]] = {}
        self._changed_at: dict[str, int] = {}
        self._notifier = notifier
        self._members_of = members_of
        self._tasks: set[asyncio.Task[None]] = set()

    def _on_change(self, room_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._wake_members(room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wake_members(self, room_id: str) -> None:
        self._notifier.notify(await self._members_of(room_id))

    def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        room = self._typing.setdefault(room_id, {})
        handle = room.pop(user_id, None)
        if handle is not None:
            handle.cancel()
        was_typing = handle is not None
        if typing:
            delay = max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
            loop = asyncio.get_running_loop()
            room[user_id] = loop.call_later(delay, self.set_typing, room_id, user_id, False, 0)
        if not room:
            del self._typing[room_id]
        if typing or was_typing:
            self.serial += 1
            self._changed_at[room_id] = self.serial
            self._on_change(room_id)

    def typing_in(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, {}))

    def changed_since(self, room_id: str, serial: int) -> bool:
        """Whether the room's typing set changed after `serial` (all rooms after a restart)."""
        if serial > self.serial:
            return True
        return self._changed_at.get(room_id, 0) > serial
