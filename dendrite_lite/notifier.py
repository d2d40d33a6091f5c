"""Wakes long-polls: the writer's services tell it which users a commit concerns.

In memory on purpose: a long-poll only waits for things that happen while it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Notifier:
    def __init__(self) -> None:
        self.position = 0
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @property
    def active(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    def notify(self, user_ids: Iterable[str], position: int) -> None:
        self.position = max(self.position, position)
        for user_id in user_ids:
            for event in self._waiters.get(user_id, ()):
                event.set()

    async def wait(self, user_id: str, timeout_s: float) -> bool:
        """Wait until `user_id` is concerned by a commit, or the timeout; true if woken."""
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
