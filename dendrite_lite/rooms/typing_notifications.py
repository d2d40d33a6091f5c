"""Typing notifications: https://spec.matrix.org/latest/client-server-api/#typing-notifications

Kept in memory only: typing is worth nothing after a restart. Every change of a room's
typing set bumps a serial; a sync token carries the serial it has seen. Each entry
expires on its own timer.

Changes happen on the event loop; syncs read from a database thread. So the per-room
sets a sync reads are immutable tuples, replaced whole on a change: a reader never
iterates a container that is being modified.
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
        # room -> user -> expiry timer (event loop only)
        self._timers: dict[str, dict[str, asyncio.TimerHandle]] = {}
        # room -> the sorted typing users (read by syncs on other threads)
        self._typers: dict[str, tuple[str, ...]] = {}
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
        room = self._timers.setdefault(room_id, {})
        handle = room.pop(user_id, None)
        if handle is not None:
            handle.cancel()
        was_typing = handle is not None
        if typing:
            delay = max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
            loop = asyncio.get_running_loop()
            room[user_id] = loop.call_later(delay, self.set_typing, room_id, user_id, False, 0)
        if not room:
            del self._timers[room_id]
        if typing == was_typing:
            return  # only the timeout moved: the set is the same, nobody needs telling
        typers = tuple(sorted(room))
        if typers:
            self._typers[room_id] = typers
        else:
            self._typers.pop(room_id, None)
        # The serial is bumped after the set is replaced: a sync that reads the serial
        # first can only see a newer set than its serial says (sent again next time).
        self._changed_at[room_id] = self.serial + 1
        self.serial += 1
        self._on_change(room_id)

    def typing_in(self, room_id: str) -> list[str]:
        return list(self._typers.get(room_id, ()))

    def changed_since(self, room_id: str, serial: int) -> bool:
        """Whether the room's typing set changed after `serial` (all rooms after a restart)."""
        if serial > self.serial:
            return True
        return self._changed_at.get(room_id, 0) > serial

    def rooms_changed_since(self, serial: int) -> set[str] | None:
        """Rooms whose typing set changed after `serial`; None: any may have (a restart).

        Lets an incremental sync look only at those rooms instead of asking every room.
        Called from reader threads: copy the items first (the loop may add a room).
        """
        if serial > self.serial:
            return None
        return {room_id for room_id, at in list(self._changed_at.items()) if at > serial}
