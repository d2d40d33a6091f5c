"""The rule cache and the unread counts, on a real database with the real schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from dendrite_lite.events.pdu import Pdu
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS
from dendrite_lite.push import hook as hook_module
from dendrite_lite.push.counts import mark_read
from dendrite_lite.push.evaluator import RuleCache, evaluate
from dendrite_lite.push.hook import PushEvent, PushHook
from dendrite_lite.push.rules import Rule
from dendrite_lite.storage import migrations, push_rules
from dendrite_lite.storage import notifications as store
from dendrite_lite.storage.db import GiveWay
from tests.unit.push.conftest import ALICE, BOB, view

CAROL = "@carol:example.org"
ROOM = "!room:example.org"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[apsw.Connection]:
    connection = apsw.Connection(str(tmp_path / "push.db"))
    migrations.migrate(connection)
    for user in (ALICE, BOB, CAROL):
        connection.execute("INSERT INTO users (user_id, created_ts) VALUES (?, 0)", (user,))
    yield connection
    connection.close()


class CountingLoad:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, conn: apsw.Connection, users: list[str]) -> dict[str, push_rules.UserRules]:
        self.calls.append(sorted(users))
        return push_rules.load_many(conn, users)


def test_rules_are_loaded_once_per_user_and_shared_when_default(conn: apsw.Connection) -> None:
    push_rules.upsert_rule(conn, BOB, Rule("sender", CAROL, []), 1)
    cache, load = RuleCache(), CountingLoad()
    first = cache.get_many(conn, [ALICE, BOB, CAROL], load)
    assert load.calls == [[ALICE, BOB, CAROL]]  # one query for all the missing users
    assert first[ALICE] is cache.default and first[CAROL] is cache.default
    assert first[BOB] is not cache.default
    again = cache.get_many(conn, [ALICE, BOB, CAROL], load)
    assert load.calls == [[ALICE, BOB, CAROL]]  # all cached
    assert again[BOB] is first[BOB]
    # Bob's rule silences Carol for him only.
    from_carol = view(sender=CAROL)
    assert evaluate(again[BOB], from_carol, BOB, None).notify is False  # type: ignore[union-attr]
    assert evaluate(again[ALICE], from_carol, ALICE, None).notify is True  # type: ignore[union-attr]


def test_invalidation_reloads_one_user(conn: apsw.Connection) -> None:
    cache, load = RuleCache(), CountingLoad()
    cache.get_many(conn, [ALICE, BOB], load)
    push_rules.set_default(conn, ALICE, "override", ".m.rule.master", enabled=True)
    cache.invalidate(ALICE)
    found = cache.get_many(conn, [ALICE, BOB], load)
    assert load.calls[-1] == [ALICE]
    assert found[ALICE] is not cache.default
    assert evaluate(found[ALICE], view(), ALICE, None).notify is False  # type: ignore[union-attr]


def test_cache_is_bounded(conn: apsw.Connection) -> None:
    cache = RuleCache(max_users=2)
    cache.get_many(conn, [ALICE, BOB], push_rules.load_many)
    cache.get_many(conn, [CAROL], push_rules.load_many)
    load = CountingLoad()
    cache.get_many(conn, [ALICE, BOB, CAROL], load)
    assert load.calls == [[ALICE]]  # the oldest entry went


def notify(
    conn: apsw.Connection, position: int, thread: str = store.MAIN, highlight: bool = False
) -> None:
    """A notification of Alice's for a message at `position` (the message is stored too:
    a recount walks the room's events)."""
    conn.execute(
        "INSERT INTO events (event_id, room_id, type, sender, origin_server_ts, depth,"
        " stream_pos, pdu, client, unsigned)"
        " VALUES (?, ?, 'm.room.message', ?, 0, ?, ?, x'7b7d', x'7b7d', x'7b7d')",
        (f"$e{position}", ROOM, BOB, position, position),
    )
    store.record(
        conn, position, ROOM, position, thread, 0, [store.Notified(ALICE, highlight, b"[]", True)]
    )


def counts(conn: apsw.Connection) -> tuple[int, int]:
    return store.unread_by_room(conn, ALICE).get(ROOM, (0, 0))


def test_each_recipient_gets_their_own_answer_across_chunks(conn: apsw.Connection) -> None:
    """Recipients are stored by one statement per chunk and shared answer: a room bigger
    than a chunk, with highlights, other actions and an uncounted invitee among them,
    keeps every recipient's own row and count."""
    users = [f"@u{i}:example.org" for i in range(store.RECORD_CHUNK * 2 + 7)]
    loud = b'["notify",{"set_tweak":"highlight"}]'
    recipients = [
        store.Notified(
            user_id,
            i % 50 == 0,
            loud if i % 50 == 0 else (b'["notify",{"set_tweak":"sound"}]' if i % 7 == 0 else b"[]"),
            i != 3,
        )
        for i, user_id in enumerate(users)
    ]
    paused: list[int] = []
    for position in (20, 21):
        store.record(
            conn,
            position,
            ROOM,
            position,
            store.MAIN,
            5,
            recipients,
            pause=lambda: paused.append(1),
        )
    assert len(paused) == 4  # between the three chunks, twice
    rows = {
        (str(user), int(pos)): (int(highlight), bytes(actions), int(ts), int(nid), str(thread))
        for user, pos, highlight, actions, ts, nid, thread in conn.execute(
            "SELECT user_id, stream_pos, highlight, actions, ts, event_nid, thread_id"
            " FROM push_notifications WHERE room_id = ?",
            (ROOM,),
        )
    }
    assert rows == {
        (n.user_id, position): (int(n.highlight), n.actions, 5, position, store.MAIN)
        for n in recipients
        for position in (20, 21)
    }
    stored_counts = {
        str(user): (int(notes), int(highs), int(last))
        for user, notes, highs, last in conn.execute(
            "SELECT user_id, notifications, highlights, last_pos FROM push_counts"
            " WHERE room_id = ? AND thread_id = ?",
            (ROOM, store.MAIN),
        )
    }
    assert stored_counts == {
        n.user_id: (2, 2 if n.highlight else 0, 21) for n in recipients if n.counted
    }


def test_counts_rise_and_clear_up_to_the_receipt(conn: apsw.Connection) -> None:
    notify(conn, 10)
    notify(conn, 11, highlight=True)
    notify(conn, 12)
    assert counts(conn) == (3, 1)
    assert mark_read(conn, ALICE, ROOM, store.UNTHREADED, 11)
    assert counts(conn) == (1, 0)
    # An older receipt (m.read behind m.read.private) reads nothing back as unread.
    assert not mark_read(conn, ALICE, ROOM, store.UNTHREADED, 10)
    assert counts(conn) == (1, 0)
    notify(conn, 13)
    assert counts(conn) == (2, 0)
    mark_read(conn, ALICE, ROOM, store.UNTHREADED, 13)
    assert counts(conn) == (0, 0)


def test_threaded_receipts_clear_their_thread_only(conn: apsw.Connection) -> None:
    notify(conn, 10)
    notify(conn, 11, thread="$root")
    notify(conn, 12, thread="$root", highlight=True)
    notify(conn, 13)
    assert counts(conn) == (4, 1)
    mark_read(conn, ALICE, ROOM, "$root", 12)
    assert counts(conn) == (2, 0)
    mark_read(conn, ALICE, ROOM, store.MAIN, 10)
    assert counts(conn) == (1, 0)
    notify(conn, 14, thread="$root")
    mark_read(conn, ALICE, ROOM, store.UNTHREADED, 14)  # unthreaded: every thread
    assert counts(conn) == (0, 0)


def test_leaving_clears_counts_and_total(conn: apsw.Connection) -> None:
    notify(conn, 10)
    store.record(
        conn, 11, "!other:x", 11, store.MAIN, 0, [store.Notified(ALICE, False, b"[]", True)]
    )
    assert store.total_unread(conn, ALICE) == 2
    store.clear_counts(conn, ALICE, ROOM)
    assert store.total_unread(conn, ALICE) == 1


def _message(event_id: str = "$big", position: int = 7) -> PushEvent:
    """Bob's message as the hook gets it, just persisted at `position`."""
    event = Pdu(
        event_id=event_id,
        room_id=ROOM,
        sender=BOB,
        type="m.room.message",
        state_key=None,
        content={"msgtype": "m.text", "body": "to everyone"},
        prev_events=(),
        auth_events=(),
        depth=1,
        origin_server_ts=0,
    )
    return PushEvent(event, ROOM, position, position, KNOWN_ROOM_VERSIONS["11"])


def test_a_failing_evaluation_never_fails_the_send(
    conn: apsw.Connection, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever goes wrong in the hook is rolled back to its savepoint and logged; the
    event's own unit carries on (the caller then reads the members itself)."""
    hook = PushHook("example.org", RuleCache())

    def broken(conn: apsw.Connection, pushed: PushEvent) -> list[str]:
        store.advance_read_mark(conn, ALICE, ROOM, store.UNTHREADED, 99)
        raise RuntimeError("bug")

    monkeypatch.setattr(hook, "_process", broken)
    conn.execute("BEGIN")
    store.advance_read_mark(conn, BOB, ROOM, store.UNTHREADED, 1)  # the unit's own work
    pushed = _message("$e", 5)
    assert hook.on_event(conn, pushed) is None
    conn.execute("COMMIT")
    marks = conn.execute("SELECT user_id FROM push_read_marks").fetchall()
    assert marks == [(BOB,)]
    assert "push rule evaluation failed for $e" in caplog.text


def test_a_recount_counts_only_the_readers_own_notifications(conn: apsw.Connection) -> None:
    notify(conn, 10)
    notify(conn, 11)
    notify(conn, 12)
    # Carol was notified of 11 and 12 as well, and of 13 alone.
    store.record(conn, 11, ROOM, 11, store.MAIN, 0, [store.Notified(CAROL, True, b"[]", True)])
    store.record(conn, 12, ROOM, 12, store.MAIN, 0, [store.Notified(CAROL, True, b"[]", True)])
    conn.execute(
        "INSERT INTO events (event_id, room_id, type, sender, origin_server_ts, depth,"
        " stream_pos, pdu, client, unsigned)"
        " VALUES ('$e13', ?, 'm.room.message', ?, 0, 13, 13, x'7b7d', x'7b7d', x'7b7d')",
        (ROOM, BOB),
    )
    store.record(conn, 13, ROOM, 13, store.MAIN, 0, [store.Notified(CAROL, True, b"[]", True)])
    # A receipt at 10 with newer notifications left: Alice's counts are recounted.
    assert mark_read(conn, ALICE, ROOM, store.UNTHREADED, 10)
    assert counts(conn) == (2, 0)
    assert store.unread_by_room(conn, CAROL).get(ROOM) == (3, 3)


@pytest.mark.parametrize(("members", "pauses"), [(10, 0), (49, 0), (50, 2), (300, 4)])
def test_a_big_rooms_event_may_give_way_between_its_steps(
    conn: apsw.Connection, monkeypatch: pytest.MonkeyPatch, members: int, pauses: int
) -> None:
    """From GIVE_WAY_RECIPIENTS on, the hook offers the writer a place to stop before it
    evaluates, before it stores, and between every RECORD_CHUNK recipients stored (300:
    three chunks); a small room's event never stops."""
    users = [BOB, *(f"@u{i}:example.org" for i in range(members))]
    monkeypatch.setattr(hook_module.room_state, "members", lambda conn, room_id: users)
    hook = PushHook("example.org", RuleCache())
    offered: list[int] = []
    hook.give_way = lambda: offered.append(len(offered))
    conn.execute("BEGIN")
    assert hook.on_event(conn, _message()) == users
    conn.execute("COMMIT")
    assert len(offered) == pauses
    stored = conn.execute("SELECT count(*) FROM push_notifications").fetchone()
    assert stored == (members,)
    assert conn.execute("SELECT count(*) FROM push_counts").fetchone() == (members,)


def test_giving_way_is_not_a_push_failure(
    conn: apsw.Connection, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer's GiveWay goes through the hook's own error handling (which would log
    it and let the event commit without its counts) to the writer, which rolls back the
    whole unit."""
    users = [BOB, *(f"@u{i}:example.org" for i in range(200))]
    monkeypatch.setattr(hook_module.room_state, "members", lambda conn, room_id: users)
    hook = PushHook("example.org", RuleCache())
    calls: list[int] = []

    def give_way() -> None:
        calls.append(1)
        if len(calls) == 3:  # between the first and second chunk of 128
            raise GiveWay

    hook.give_way = give_way
    conn.execute("BEGIN")
    conn.execute("SAVEPOINT unit")
    with pytest.raises(GiveWay):
        hook.on_event(conn, _message())
    conn.execute("ROLLBACK TO unit")
    conn.execute("RELEASE unit")
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM push_notifications").fetchone() == (0,)
    assert "push rule evaluation failed" not in caplog.text
