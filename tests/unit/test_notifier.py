from __future__ import annotations

import asyncio

from dendrite_lite.notifier import Notifier


async def test_wakes_only_the_concerned_user() -> None:
    notifier = Notifier()
    alice = asyncio.create_task(notifier.wait("@alice:hs", 5))
    bob = asyncio.create_task(notifier.wait("@bob:hs", 0.2))
    await asyncio.sleep(0.01)
    assert notifier.active == 2
    notifier.notify(["@alice:hs"], 7)
    assert await alice is True
    assert await bob is False
    assert notifier.position == 7
    assert notifier.active == 0


async def test_change_between_read_and_wait_is_not_missed() -> None:
    notifier = Notifier()
    tick = notifier.tick  # a sync notes the tick, then reads...
    notifier.notify(["@alice:hs"])  # ...a change lands before it waits
    assert await notifier.wait("@alice:hs", 5, after_tick=tick) is True
    assert await notifier.wait("@alice:hs", 0.05, after_tick=notifier.tick) is False
