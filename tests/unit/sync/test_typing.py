"""Typing notifications: serials, expiry, and who is woken."""

from __future__ import annotations

import asyncio

from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms.typing_notifications import TypingNotifications


async def members(room_id: str) -> list[str]:
    return ["@a:hs", "@b:hs"]


async def test_changes_bump_the_serial_and_wake_members() -> None:
    notifier = Notifier()
    typing = TypingNotifications(notifier, members)
    tick = notifier.tick
    typing.set_typing("!r", "@b:hs", True, 10_000)
    assert typing.typing_in("!r") == ["@b:hs"]
    assert typing.changed_since("!r", 0) and not typing.changed_since("!other", 0)
    assert await notifier.wait("@a:hs", 1, after_tick=tick)
    serial = typing.serial
    # Renewing only moves the timeout: no change, nobody woken.
    typing.set_typing("!r", "@b:hs", True, 10_000)
    assert typing.serial == serial and not typing.changed_since("!r", serial)
    # Stopping when not typing is nothing either.
    typing.set_typing("!r", "@c:hs", False, 0)
    assert typing.serial == serial
    typing.set_typing("!r", "@b:hs", False, 0)
    assert typing.typing_in("!r") == [] and typing.changed_since("!r", serial)
    # A token from before a restart (a larger serial) sees every room as changed.
    assert typing.changed_since("!other", typing.serial + 5)
    # The rooms an incremental sync must look at: just the changed ones, or all.
    typing.set_typing("!s", "@a:hs", True, 10_000)
    assert typing.rooms_changed_since(0) == {"!r", "!s"}
    assert typing.rooms_changed_since(serial) == {"!r", "!s"}
    assert typing.rooms_changed_since(typing.serial - 1) == {"!s"}
    assert typing.rooms_changed_since(typing.serial) == set()
    assert typing.rooms_changed_since(typing.serial + 5) is None


async def test_expiry() -> None:
    typing = TypingNotifications(Notifier(), members)
    typing.set_typing("!r", "@b:hs", True, 50)
    typing.set_typing("!r", "@c:hs", True, 10_000)
    serial = typing.serial
    await asyncio.sleep(0.15)
    assert typing.typing_in("!r") == ["@c:hs"]
    assert typing.changed_since("!r", serial)
    typing.set_typing("!r", "@c:hs", False, 0)
