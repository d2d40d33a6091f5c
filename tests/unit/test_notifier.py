from __future__ import annotations

import asyncio

from dendrite_lite.notifier import (
    MAX_WAITING_PER_USER,
    MIN_COMPACT,
    Departure,
    Notifier,
    departure,
)


async def test_wakes_only_the_concerned_user() -> None:
    notifier = Notifier()
    alice = asyncio.create_task(notifier.wait("@alice:hs", 5))
    bob = asyncio.create_task(notifier.wait("@bob:hs", 0.2))
    await asyncio.sleep(0.01)
    assert notifier.active == 2
    notifier.notify(["@alice:hs"], 7)
    assert await alice == 1  # woken, by a notification that woke one long-poll
    assert await bob == 0  # timed out
    assert notifier.position == 7
    assert notifier.active == 0


async def test_change_between_read_and_wait_is_not_missed() -> None:
    notifier = Notifier()
    tick = notifier.tick  # a sync notes the tick, then reads...
    notifier.notify(["@alice:hs"])  # ...a change lands before it waits
    assert await notifier.wait("@alice:hs", 5, after_tick=tick) == 1
    assert await notifier.wait("@alice:hs", 0.05, after_tick=notifier.tick) == 0


async def test_waiters_learn_the_size_of_the_fan_out() -> None:
    notifier = Notifier()
    many = [asyncio.create_task(notifier.wait(f"@u{i}:hs", 5)) for i in range(20)]
    twice = asyncio.create_task(notifier.wait("@u0:hs", 5))  # a second device of @u0
    alone = asyncio.create_task(notifier.wait("@dm:hs", 5))
    await asyncio.sleep(0.01)
    notifier.notify([f"@u{i}:hs" for i in range(20)] + ["@nobody:hs"])
    notifier.notify(["@dm:hs"])
    assert [await t for t in many] == [21] * 20
    assert await twice == 21
    assert await alone == 1
    assert notifier.active == 0


async def test_a_user_cannot_pile_up_waiting_long_polls() -> None:
    notifier = Notifier()
    waits = [asyncio.create_task(notifier.wait("@loop:hs", 5)) for _ in range(MAX_WAITING_PER_USER)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waits)
    newest = asyncio.create_task(notifier.wait("@loop:hs", 5))
    await asyncio.sleep(0.01)
    # The oldest is answered at once (as if its time ran out); the rest keep waiting.
    assert waits[0].done() and waits[0].result() == 0
    assert not any(w.done() for w in waits[1:]) and not newest.done()
    assert notifier.active == MAX_WAITING_PER_USER
    notifier.notify(["@loop:hs"])
    assert [await w for w in waits[1:]] == [MAX_WAITING_PER_USER] * (MAX_WAITING_PER_USER - 1)
    assert await newest == MAX_WAITING_PER_USER
    assert notifier.active == 0


async def test_time_limits_run_out_in_order_whatever_was_answered_before() -> None:
    notifier = Notifier()
    loop = asyncio.get_running_loop()
    started = loop.time()
    ended: dict[str, float] = {}

    async def wait(user: str, seconds: float) -> int:
        result = await notifier.wait(user, seconds)
        ended[user] = loop.time() - started
        return result

    late = asyncio.create_task(wait("@late:hs", 0.15))
    early = asyncio.create_task(wait("@early:hs", 0.05))  # earlier than the timer set
    answered = asyncio.create_task(wait("@answered:hs", 0.01))  # earlier still
    middle = asyncio.create_task(wait("@middle:hs", 0.1))
    await asyncio.sleep(0)
    notifier.notify(["@answered:hs"])
    assert await answered == 1
    assert await early == 0 and await middle == 0 and await late == 0
    assert 0.05 <= ended["@early:hs"] < ended["@middle:hs"] < ended["@late:hs"]
    assert ended["@late:hs"] >= 0.15
    # Nothing is left behind: no waiter, no deadline, no timer.
    assert notifier.active == 0
    assert not notifier._deadlines and notifier._timer is None


async def test_a_cancelled_long_poll_leaves_its_deadline_harmlessly() -> None:
    notifier = Notifier()
    gone = asyncio.create_task(notifier.wait("@gone:hs", 0.02))
    stays = asyncio.create_task(notifier.wait("@stays:hs", 0.05))
    await asyncio.sleep(0)
    gone.cancel()  # the client went away
    assert await stays == 0
    assert gone.cancelled()
    assert notifier.active == 0 and not notifier._deadlines


async def test_answered_waits_do_not_pile_up_until_the_timer_fires() -> None:
    notifier = Notifier()
    patient = asyncio.create_task(notifier.wait("@patient:hs", 300))
    await asyncio.sleep(0)
    for _ in range(5 * MIN_COMPACT):
        busy = asyncio.create_task(notifier.wait("@busy:hs", 30))
        await asyncio.sleep(0)
        notifier.notify(["@busy:hs"])
        assert await busy == 1
    assert len(notifier._deadlines) < 2 * MIN_COMPACT
    notifier.notify(["@patient:hs"])
    assert await patient == 1


class _Writes:
    """A stand-in for storage/db.Database's write priority: a write under way until
    `done` is set."""

    def __init__(self) -> None:
        self.done = asyncio.Event()

    def writes_pending(self) -> bool:
        return not self.done.is_set()

    async def writes_passed(self) -> None:
        await self.done.wait()


async def test_a_fan_out_wakes_after_the_write_under_way() -> None:
    """A big room's hundred wake-ups wait for the DM being written; a DM's own
    wake-up (a few long-polls) does not wait for anything."""
    writes = _Writes()
    notifier = Notifier(writes)
    many = [asyncio.create_task(notifier.wait(f"@u{i}:hs", 5)) for i in range(20)]
    alone = asyncio.create_task(notifier.wait("@dm:hs", 5))
    await asyncio.sleep(0.01)
    notifier.notify([f"@u{i}:hs" for i in range(20)])
    notifier.notify(["@dm:hs"])
    assert await asyncio.wait_for(alone, 1) == 1
    await asyncio.sleep(0.05)
    assert not any(t.done() for t in many)
    # A wait that starts meanwhile learns of the change at once (the tick is taken).
    assert notifier.changed_since("@u0:hs", 0)
    writes.done.set()
    assert [await asyncio.wait_for(t, 1) for t in many] == [20] * 20
    assert notifier.active == 0


async def test_stopping_answers_every_long_poll_at_once() -> None:
    """The server is stopping: waiting long-polls answer as if their time ran out, and
    new ones do not wait (uvicorn waits for requests in flight before it stops)."""
    notifier = Notifier()
    waits = [asyncio.create_task(notifier.wait(user, 30)) for user in ("@a:hs", "@a:hs", "@b:hs")]
    await asyncio.sleep(0.01)
    notifier.stop_waiting()
    assert await asyncio.wait_for(asyncio.gather(*waits), 1) == [0, 0, 0]
    assert await asyncio.wait_for(notifier.wait("@a:hs", 30), 1) == 0
    assert notifier.active == 0


async def test_a_long_poll_whose_client_left_stops_waiting() -> None:
    notifier = Notifier()

    async def poll(client: Departure) -> int:
        departure.set(client)  # the task's own context
        return await notifier.wait("@a:hs", 60)

    client = Departure()
    waiting = asyncio.create_task(poll(client))
    await asyncio.sleep(0)
    assert notifier.active == 1
    client.leave()
    assert await asyncio.wait_for(waiting, 1) == 0
    assert notifier.active == 0
    # Gone for good: a later wait of the same request does not wait at all.
    assert await asyncio.wait_for(poll(client), 1) == 0
    # Other long-polls, in other contexts, are untouched.
    other = asyncio.create_task(poll(Departure()))
    await asyncio.sleep(0)
    notifier.notify(["@a:hs"])
    assert await asyncio.wait_for(other, 1) == 1
