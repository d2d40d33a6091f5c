"""device_list_changes (what /sync's device_lists and /keys/changes say), checked against
a plain model of who shared a room with whom at every position, on the real schema."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import apsw
import pytest

from dendrite_lite.e2ee.device_lists import (
    device_list_changes,
    one_time_key_counts,
    record_changes,
    unused_fallback_key_types,
    users_to_wake,
)
from dendrite_lite.storage import device_lists as store
from dendrite_lite.storage import e2e_keys
from tests.unit.e2ee.conftest import World

A, B, C, D = (f"@{name}:localhost" for name in "abcd")
REMOTE = "@remote:elsewhere.example"


@dataclass
class Model:
    """What happened, position by position."""

    members: list[tuple[int, str, str, str]] = field(default_factory=list)  # pos, room, user, m
    changes: list[tuple[int, str, str | None]] = field(default_factory=list)  # pos, user, aud

    def membership(self, room: str, user: str, pos: int) -> str | None:
        found = None
        for at, r, u, m in self.members:
            if at <= pos and r == room and u == user:
                found = m
        return found

    def shares(self, a: str, b: str, pos: int) -> bool:
        rooms = {r for _, r, _, _ in self.members}
        return any(
            self.membership(r, a, pos) == "join" and self.membership(r, b, pos) == "join"
            for r in rooms
        )

    def expected(self, viewer: str, since: int, upto: int) -> tuple[list[str], list[str]]:
        everyone = {u for _, _, u, _ in self.members} | {u for _, u, _ in self.changes}
        changed = {
            user
            for at, user, audience in self.changes
            if since < at <= upto
            and (
                audience == viewer
                or (audience is None and (user == viewer or self.shares(viewer, user, upto)))
            )
        }
        left = set()
        for user in everyone - {viewer}:
            then, now = self.shares(viewer, user, since), self.shares(viewer, user, upto)
            if now and not then:
                changed.add(user)
            if then and not now:
                left.add(user)
        return sorted(changed - left), sorted(left)


def test_nothing_changed(world: World, conn: apsw.Connection) -> None:
    world.member("!r", A, "join")
    world.member("!r", B, "join")
    since = world.position
    world.message("!r")
    assert device_list_changes(conn, A, since, world.position) == ([], [])
    assert device_list_changes(conn, A, world.position, world.position) == ([], [])
    assert device_list_changes(conn, A, world.position, since) == ([], [])


def test_room_mates_and_strangers(world: World, conn: apsw.Connection) -> None:
    world.member("!r", A, "join")
    world.member("!r", B, "join")
    world.member("!other", C, "join")
    since = world.position
    world.change(B)
    world.change(C)
    world.change(A)
    assert device_list_changes(conn, A, since, world.position) == ([A, B], [])
    assert device_list_changes(conn, C, since, world.position) == ([C], [])


def test_invited_is_not_sharing(world: World, conn: apsw.Connection) -> None:
    world.member("!r", A, "join")
    world.member("!r", B, "invite")
    since = world.position
    world.change(B)
    assert device_list_changes(conn, A, since, world.position) == ([], [])
    world.member("!r", B, "join")
    assert device_list_changes(conn, A, since, world.position) == ([B], [])


def test_private_changes(world: World, conn: apsw.Connection) -> None:
    world.member("!r", A, "join")
    world.member("!r", B, "join")
    since = world.position
    world.change(B, audience=A)
    assert device_list_changes(conn, A, since, world.position) == ([B], [])
    assert device_list_changes(conn, B, since, world.position) == ([], [])
    # The same user recorded twice at one position, for one and for all: for all.
    position, _ = record_changes(conn, [(C, A), (C, None)])
    assert conn.execute(
        "SELECT audience FROM device_list_changes WHERE stream_pos = ? AND user_id = ?",
        (position, C),
    ).fetchall() == [(None,)]


def test_history_is_used_for_past_windows(world: World, conn: apsw.Connection) -> None:
    world.member("!r", A, "join")
    start = world.position
    world.member("!r", B, "join")
    joined = world.position
    world.change(B)
    changed = world.position
    world.member("!r", B, "leave")
    # Seen from a window that ends before B left: B joined, then changed.
    assert device_list_changes(conn, A, start, changed) == ([B], [])
    assert device_list_changes(conn, A, joined, changed) == ([B], [])
    # Over the whole span B came and went: nothing to say.
    assert device_list_changes(conn, A, start, world.position) == ([], [])
    assert device_list_changes(conn, A, joined, world.position) == ([], [B])


def test_a_past_window_around_my_own_join(world: World, conn: apsw.Connection) -> None:
    world.member("!r", B, "join")
    since = world.position
    world.member("!r", A, "join")
    upto = world.position
    world.member("!r", B, "leave")  # after the window
    assert device_list_changes(conn, A, since, upto) == ([B], [])


@pytest.mark.parametrize("seed", range(30))
def test_matches_the_model(world: World, conn: apsw.Connection, seed: int) -> None:
    rng = random.Random(seed)
    people = [A, B, C, D, REMOTE]
    rooms = ["!one", "!two", "!three"]
    model = Model()
    positions = [world.position]
    for _ in range(40):
        roll = rng.random()
        if roll < 0.55:
            room, user = rng.choice(rooms), rng.choice(people)
            membership = rng.choice(["join", "join", "leave", "invite", "ban"])
            model.members.append((world.member(room, user, membership), room, user, membership))
        elif roll < 0.9:
            user = rng.choice(people)
            audience = rng.choice([None, None, None, rng.choice(people)])
            model.changes.append((world.change(user, audience), user, audience))
        else:
            world.message(rng.choice(rooms))
        positions.append(world.position)
    for _ in range(60):
        since, upto = sorted(rng.sample(positions, 2))
        for viewer in people:
            assert device_list_changes(conn, viewer, since, upto) == model.expected(
                viewer, since, upto
            ), (viewer, since, upto)


def test_the_quick_check_is_indexed(conn: apsw.Connection) -> None:
    plan = " ".join(
        str(row[3])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT EXISTS (SELECT 1 FROM device_list_changes"
            " WHERE stream_pos > ?1 AND stream_pos <= ?2) OR EXISTS (SELECT 1 FROM events"
            " WHERE membership IS NOT NULL AND stream_pos > ?1 AND stream_pos <= ?2)",
            (1, 2),
        )
    )
    assert "SEARCH device_list_changes USING PRIMARY KEY" in plan, plan
    assert "SEARCH events USING INDEX events_membership_stream" in plan, plan
    assert "SCAN events" not in plan and "SCAN device_list_changes" not in plan, plan


def test_store_anything_changed(world: World, conn: apsw.Connection) -> None:
    since = world.position
    world.message("!r")
    assert not store.anything_changed(conn, since, world.position)
    world.member("!r", A, "join")
    assert store.anything_changed(conn, since, world.position)
    middle = world.position
    world.change(A)
    assert store.anything_changed(conn, middle, world.position)
    assert not store.anything_changed(conn, world.position, world.position + 5)


def test_users_to_wake(world: World, conn: apsw.Connection) -> None:
    world.member("!r", A, "join")
    world.member("!r", B, "join")
    world.member("!r", REMOTE, "join")
    world.member("!r", C, "leave")
    world.member("!s", D, "join")
    assert users_to_wake(conn, [(A, None)]) == [A, B]
    assert users_to_wake(conn, [(D, None)]) == [D]
    assert users_to_wake(conn, [(B, C)]) == [C]
    assert users_to_wake(conn, [(C, None)]) == [C]


def test_key_counts_and_fallback_types(world: World, conn: apsw.Connection) -> None:
    world.user(A, "DEV", "OTHER")
    assert one_time_key_counts(conn, A, "DEV") == {"signed_curve25519": 0}
    assert unused_fallback_key_types(conn, A, "DEV") == []
    e2e_keys.add_one_time_keys(
        conn, A, "DEV", [("signed_curve25519", "k1", b"{}"), ("signed_curve25519", "k2", b"{}")]
    )
    e2e_keys.add_one_time_keys(conn, A, "DEV", [("curve25519", "k1", b'"x"')])
    e2e_keys.add_one_time_keys(conn, A, "OTHER", [("curve25519", "k9", b'"x"')])
    assert one_time_key_counts(conn, A, "DEV") == {"signed_curve25519": 2, "curve25519": 1}
    e2e_keys.set_fallback_key(conn, A, "DEV", "signed_curve25519", "f1", b"{}")
    e2e_keys.set_fallback_key(conn, A, "DEV", "curve25519", "f2", b'"y"')
    assert unused_fallback_key_types(conn, A, "DEV") == ["curve25519", "signed_curve25519"]
    assert e2e_keys.claim_fallback_key(conn, A, "DEV", "curve25519") == ("f2", b'"y"')
    assert unused_fallback_key_types(conn, A, "DEV") == ["signed_curve25519"]
    assert unused_fallback_key_types(conn, A, "OTHER") == []
