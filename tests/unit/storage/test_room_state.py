"""State groups (delta-compressed room state) and current state, on a real SQLite file.

Every check compares with a plain-dict model of the state.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import apsw
import msgspec
import pytest

from dendrite_lite.storage import room_state, rooms
from dendrite_lite.storage.db import DatabaseSettings, connect
from dendrite_lite.storage.migrations import migrate
from dendrite_lite.storage.room_state import MAX_CHAIN, StateKey

ROOM = "!room:localhost"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "homeserver.db"


@pytest.fixture
def conn(db_path: Path) -> Iterator[apsw.Connection]:
    connection = connect(db_path, DatabaseSettings())
    migrate(connection)
    yield connection
    connection.close()


def chain_of(conn: apsw.Connection, group: int) -> list[tuple[int, int]]:
    """[(group_nid, chain_len)] from the group up to its full snapshot."""
    chain = []
    current: int | None = group
    while current is not None:
        parent, chain_len = conn.execute(
            "SELECT parent_nid, chain_len FROM state_groups WHERE group_nid = ?", (current,)
        ).fetchone()
        chain.append((current, int(chain_len)))
        current = parent
    return chain


def stored_entries(conn: apsw.Connection, group: int) -> dict[StateKey, int | None]:
    return {
        (t, k): nid
        for t, k, nid in conn.execute(
            "SELECT type, state_key, event_nid FROM state_group_entries WHERE group_nid = ?",
            (group,),
        )
    }


def assert_group_is(conn: apsw.Connection, group: int, model: dict[StateKey, int]) -> None:
    assert room_state.state_at(conn, group) == model
    for (type_, key), nid in model.items():
        assert room_state.state_entry_at(conn, group, type_, key) == nid


def test_root_group_and_lookups(conn: apsw.Connection) -> None:
    with conn:
        group = room_state.new_group(
            conn,
            ROOM,
            None,
            {("m.room.create", ""): 1, ("m.room.member", "@a:x"): 2, ("gone", ""): None},
        )
    # A removal in a root group has nothing to remove: it is not stored.
    assert stored_entries(conn, group) == {("m.room.create", ""): 1, ("m.room.member", "@a:x"): 2}
    assert_group_is(conn, group, {("m.room.create", ""): 1, ("m.room.member", "@a:x"): 2})
    assert room_state.state_entry_at(conn, group, "gone", "") is None
    assert room_state.state_entry_at(conn, group, "m.room.member", "@b:x") is None
    assert room_state.state_entry_at(conn, group, "m.room.create", "x") is None
    assert chain_of(conn, group) == [(group, 0)]
    # An unknown group has no state.
    assert room_state.state_at(conn, 999_999) == {}
    assert room_state.state_entry_at(conn, 999_999, "m.room.create", "") is None
    # An empty root group.
    with conn:
        empty = room_state.new_group(conn, ROOM, None, {})
    assert room_state.state_at(conn, empty) == {}


def test_deltas_override_and_remove(conn: apsw.Connection) -> None:
    with conn:
        root = room_state.new_group(conn, ROOM, None, {("a", ""): 1, ("b", ""): 2, ("c", "k"): 3})
        child = room_state.new_group(conn, ROOM, root, {("a", ""): 10, ("b", ""): None})
        grandchild = room_state.new_group(conn, ROOM, child, {("b", ""): 20, ("d", ""): 4})
        removed_again = room_state.new_group(conn, ROOM, grandchild, {("b", ""): None})
        # Removing a key that was never there is harmless.
        noop = room_state.new_group(conn, ROOM, removed_again, {("zz", ""): None})
    # A delta group stores only its delta, removals as NULL.
    assert stored_entries(conn, child) == {("a", ""): 10, ("b", ""): None}
    assert_group_is(conn, root, {("a", ""): 1, ("b", ""): 2, ("c", "k"): 3})
    assert_group_is(conn, child, {("a", ""): 10, ("c", "k"): 3})
    assert room_state.state_entry_at(conn, child, "b", "") is None
    assert_group_is(conn, grandchild, {("a", ""): 10, ("b", ""): 20, ("c", "k"): 3, ("d", ""): 4})
    assert_group_is(conn, removed_again, {("a", ""): 10, ("c", "k"): 3, ("d", ""): 4})
    assert room_state.state_entry_at(conn, removed_again, "b", "") is None
    assert_group_is(conn, noop, {("a", ""): 10, ("c", "k"): 3, ("d", ""): 4})
    assert [length for _, length in chain_of(conn, noop)] == [4, 3, 2, 1, 0]


def test_branches_are_independent(conn: apsw.Connection) -> None:
    with conn:
        root = room_state.new_group(conn, ROOM, None, {("a", ""): 1})
        left = room_state.new_group(conn, ROOM, root, {("b", ""): 2})
        right = room_state.new_group(conn, ROOM, root, {("a", ""): None, ("c", ""): 3})
        left_child = room_state.new_group(conn, ROOM, left, {("c", ""): 30})
    assert_group_is(conn, left, {("a", ""): 1, ("b", ""): 2})
    assert_group_is(conn, right, {("c", ""): 3})
    assert_group_is(conn, left_child, {("a", ""): 1, ("b", ""): 2, ("c", ""): 30})
    assert_group_is(conn, root, {("a", ""): 1})


def test_long_chains_become_full_snapshots(conn: apsw.Connection) -> None:
    """After MAX_CHAIN deltas the next group is a full snapshot, so reading any group walks
    at most MAX_CHAIN + 1 groups; removals survive the snapshot."""
    model: dict[StateKey, int] = {("m.room.create", ""): 1}
    models: dict[int, dict[StateKey, int]] = {}
    with conn:
        group = room_state.new_group(conn, ROOM, None, dict(model))
    models[group] = dict(model)
    lengths = [0]
    removed_at_snapshot: StateKey | None = None
    for i in range(1, 3 * (MAX_CHAIN + 1) + 5):
        delta: dict[StateKey, int | None] = {("m.room.member", f"@u{i}:x"): 100 + i}
        if i % 3 == 0:
            delta[("m.room.topic", "")] = 1000 + i
        if i % 7 == 0:
            delta[("m.room.member", f"@u{i - 1}:x")] = None
        if i == MAX_CHAIN + 1:
            # The delta that becomes a snapshot removes a key.
            delta[("m.room.member", "@u1:x")] = None
            removed_at_snapshot = ("m.room.member", "@u1:x")
        with conn:
            group = room_state.new_group(conn, ROOM, group, delta)
        for key, nid in delta.items():
            if nid is None:
                model.pop(key, None)
            else:
                model[key] = nid
        models[group] = dict(model)
        chain = chain_of(conn, group)
        lengths.append(chain[0][1])
        assert len(chain) <= MAX_CHAIN + 1
        assert [length for _, length in chain] == list(range(len(chain) - 1, -1, -1))
    # Chain lengths go 0, 1, ..., MAX_CHAIN, then a snapshot (0) again.
    assert lengths[: 2 * (MAX_CHAIN + 1) + 1] == [*range(MAX_CHAIN + 1)] * 2 + [0]
    # A snapshot stores the whole state, and no removals.
    snapshot = [g for g in models if chain_of(conn, g)[0][1] == 0][1]
    assert stored_entries(conn, snapshot) == models[snapshot]
    assert removed_at_snapshot is not None
    assert removed_at_snapshot not in stored_entries(conn, snapshot)
    # Every group, old and new, reads back exactly.
    for group_nid, expected in models.items():
        assert_group_is(conn, group_nid, expected)
    assert room_state.state_entry_at(conn, group, "m.room.member", "@u1:x") is None


def test_random_histories_match_a_model(conn: apsw.Connection) -> None:
    rng = random.Random(1234)
    keys: list[StateKey] = [("m.room.member", f"@u{i}:x") for i in range(12)]
    keys += [("m.room.name", ""), ("m.room.topic", ""), ("org.example", "a/b")]
    models: dict[int, dict[StateKey, int]] = {}
    next_nid = 1
    with conn:
        for _ in range(400):
            parent = rng.choice(list(models)) if models and rng.random() < 0.9 else None
            # Mostly extend the newest group (long chains), sometimes branch.
            if parent is not None and rng.random() < 0.7:
                parent = max(models)
            delta: dict[StateKey, int | None] = {}
            for key in rng.sample(keys, rng.randint(0, 4)):
                if rng.random() < 0.3:
                    delta[key] = None
                else:
                    delta[key] = next_nid
                    next_nid += 1
            group = room_state.new_group(conn, ROOM, parent, delta)
            model = dict(models[parent]) if parent is not None else {}
            for key, nid in delta.items():
                if nid is None:
                    model.pop(key, None)
                else:
                    model[key] = nid
            models[group] = model
    for group, model in models.items():
        assert room_state.state_at(conn, group) == model
        assert len(chain_of(conn, group)) <= MAX_CHAIN + 1
        for key in keys:
            assert room_state.state_entry_at(conn, group, *key) == model.get(key)
    # Many groups in one statement (what a sync sending many rooms whole reads).
    assert room_state.states_at(conn, list(models)) == models
    some = rng.sample(list(models), 37)
    assert room_state.states_at(conn, some) == {group: models[group] for group in some}
    assert room_state.states_at(conn, []) == {}


def test_state_survives_reopening_the_file(db_path: Path, conn: apsw.Connection) -> None:
    with conn:
        root = room_state.new_group(conn, ROOM, None, {("a", ""): 1})
        group = root
        for i in range(MAX_CHAIN + 3):
            group = room_state.new_group(conn, ROOM, group, {("k", str(i)): i + 2, ("a", ""): None})
        room_state.set_current(conn, ROOM, "a", "", 1, None)
    expected = room_state.state_at(conn, group)
    conn.close()
    reopened = connect(db_path, DatabaseSettings())
    try:
        assert room_state.state_at(reopened, group) == expected
        assert room_state.state_at(reopened, root) == {("a", ""): 1}
        assert room_state.current_entry(reopened, ROOM, "a", "") == 1
    finally:
        reopened.close()


def test_current_state(conn: apsw.Connection) -> None:
    other = "!other:localhost"
    with conn:
        room_state.set_current(conn, ROOM, "m.room.create", "", 1, None)
        room_state.set_current(conn, ROOM, "m.room.member", "@a:x", 2, "join")
        room_state.set_current(conn, ROOM, "m.room.member", "@b:x", 3, "invite")
        room_state.set_current(conn, ROOM, "m.room.member", "@c:x", 4, "join")
        room_state.set_current(conn, other, "m.room.member", "@a:x", 5, "join")
        # Replacing: the newest event and membership win.
        room_state.set_current(conn, ROOM, "m.room.member", "@c:x", 6, "leave")
        room_state.set_current(conn, ROOM, "m.room.member", "@b:x", 7, "join")
    assert room_state.current_state(conn, ROOM) == {
        ("m.room.create", ""): 1,
        ("m.room.member", "@a:x"): 2,
        ("m.room.member", "@b:x"): 7,
        ("m.room.member", "@c:x"): 6,
    }
    assert room_state.current_entry(conn, ROOM, "m.room.member", "@c:x") == 6
    assert room_state.current_entry(conn, ROOM, "m.room.member", "@z:x") is None
    assert room_state.current_entries(
        conn, ROOM, [("m.room.create", ""), ("m.room.name", ""), ("m.room.member", "@a:x")]
    ) == {("m.room.create", ""): 1, ("m.room.member", "@a:x"): 2}
    assert sorted(room_state.members(conn, ROOM)) == ["@a:x", "@b:x"]
    assert room_state.members(conn, ROOM, "leave") == ["@c:x"]
    assert room_state.members(conn, ROOM, "ban") == []
    assert room_state.member_counts(conn, ROOM) == {"join": 2, "leave": 1}
    assert room_state.member_counts(conn, other) == {"join": 1}
    assert room_state.member_counts(conn, "!none:localhost") == {}
    assert room_state.member_counts_in(conn, [ROOM, other, "!none:localhost"]) == {
        ROOM: {"join": 2, "leave": 1},
        other: {"join": 1},
    }
    assert room_state.current_state(conn, "!none:localhost") == {}


def _event(conn: apsw.Connection, nid: int, type_: str, key: str, membership: str | None) -> None:
    content = {"membership": membership} if membership else {"history_visibility": f"v{nid}"}
    conn.execute(
        "INSERT INTO events (event_nid, event_id, room_id, type, state_key, sender,"
        " origin_server_ts, depth, stream_pos, pdu, client, unsigned, membership)"
        " VALUES (?, ?, ?, ?, ?, '@a:x', 0, ?, ?, x'7b7d', ?, x'7b7d', ?)",
        (
            nid,
            f"$e{nid}",
            ROOM,
            type_,
            key,
            nid,
            nid,
            msgspec.json.encode({"content": content}),
            membership,
        ),
    )


def test_visibility_entries_at_takes_the_nearest_entry_of_each_key(
    conn: apsw.Connection,
) -> None:
    """What history visibility reads per state group, in one query: the nearest group's
    entry of m.room.history_visibility and of the user's member event (a removal there
    means none), as state_entry_at would find them one by one."""
    hv, member = ("m.room.history_visibility", ""), ("m.room.member", "@a:x")
    with conn:
        rooms.insert(conn, ROOM, "10", "@a:x", 0)
        for nid, (type_, key), membership in [
            (1, hv, None),
            (2, member, "invite"),
            (3, member, "join"),
            (4, hv, None),
        ]:
            _event(conn, nid, type_, key, membership)
        root = room_state.new_group(conn, ROOM, None, {hv: 1, member: 2})
        joined = room_state.new_group(conn, ROOM, root, {member: 3})
        changed = room_state.new_group(conn, ROOM, joined, {hv: 4})
        removed = room_state.new_group(conn, ROOM, changed, {member: None, hv: None})

    def visibility_of(group: int, user_id: str) -> tuple[str | None, str | None]:
        client, membership = room_state.visibility_entries_at(conn, group, user_id)
        value = None if client is None else msgspec.json.decode(client)["content"]
        return (None if value is None else value["history_visibility"], membership)

    assert visibility_of(root, "@a:x") == ("v1", "invite")
    assert visibility_of(joined, "@a:x") == ("v1", "join")
    assert visibility_of(changed, "@a:x") == ("v4", "join")
    assert visibility_of(removed, "@a:x") == (None, None)
    assert visibility_of(changed, "@b:x") == ("v4", None)
    # All groups in one statement: the same entries as one group at a time.
    groups = [root, joined, changed, removed]
    for user_id in ("@a:x", "@b:x"):
        assert room_state.visibility_entries_in(conn, groups, user_id) == {
            group: room_state.visibility_entries_at(conn, group, user_id) for group in groups
        }
