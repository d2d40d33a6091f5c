"""Wakes long-polls: the writer's services tell it which users a commit concerns.

In memory on purpose: a long-poll only waits for things that happen while it waits.
Each user's latest concerning position is remembered, so a commit that lands between a
sync's read and its wait is not missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Notifier:
    def __init__(self) -> None:
        self.position = 0
        self._latest: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @property
    def active(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    def notify(self, user_ids: Iterable[str], position: int) -> None:
        self.position = max(self.position, position)
        for user_id in user_ids:
            if self._latest.get(user_id, 0) < position:
                self._latest[user_id] = position
            for event in self._waiters.get(user_id, ()):
                event.set()

    async def wait(self, user_id: str, timeout_s: float, after: int = -1) -> bool:
        """Wait until a commit concerns `user_id` (beyond position `after`) or time runs out.

        True if woken (or something past `after` was already there).
        """
        if self._latest.get(user_id, 0) > after >= 0:
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
