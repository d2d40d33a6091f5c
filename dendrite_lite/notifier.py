"""Wakes long-polls: services tell it which users a change concerns.

In memory on purpose: a long-poll only waits for things that happen while it waits.
Every notification takes the next tick of a counter, and each user's latest tick is
remembered; a sync notes the tick before it reads, so a change that lands between its
read and its wait wakes it at once instead of being missed. Ephemeral changes (typing,
presence) use it too, though they have no stream position.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Notifier:
    def __init__(self) -> None:
        self.position = 0
        self.tick = 0
        self._latest: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @property
    def active(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    def notify(self, user_ids: Iterable[str], position: int | None = None) -> None:
        if position is not None:
            self.position = max(self.position, position)
        self.tick += 1
        for user_id in user_ids:
            self._latest[user_id] = self.tick
            for event in self._waiters.get(user_id, ()):
                event.set()

    def changed_since(self, user_id: str, tick: int) -> bool:
        return self._latest.get(user_id, 0) > tick

    async def wait(self, user_id: str, timeout_s: float, after_tick: int | None = None) -> bool:
        """Wait until a change concerns `user_id` (after `after_tick`) or time runs out.

        True if woken, or if a change after `after_tick` had already happened.
        """
        if after_tick is not None and self.changed_since(user_id, after_tick):
            return True
        event = asyncio.Event()
        self._waiters.setdefault(user_id, set()).add(event)
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(user_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[user_id]
