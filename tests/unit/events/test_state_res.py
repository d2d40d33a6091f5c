"""State resolution on hand-made forked DAGs (scenario names follow Ruma's where they exist).

Each scenario builds a room, forks it into branches whose events are each valid when
created, and resolves the branch states.  Expected results are derived by hand from the
spec's algorithm; the MSC4297 scenarios reproduce the examples of that proposal (the
expected outcomes agree with Ruma's snapshots for the same DAGs).
"""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.events.auth_rules import check_auth
from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import RoomVersion, RoomVersions
from dendrite_lite.events.state_res import (
    auth_chain,
    conflicted_subgraph,
    is_power_event,
    resolve_state,
    state_after,
)
from dendrite_lite.events.state_res.graph import auth_difference, lexicographic_topological_sort
from dendrite_lite.events.state_res.v1 import separate_v1
from dendrite_lite.events.state_res.v2 import (
    iterative_auth_checks,
    mainline_sort,
    resolve_state_v2,
    separate,
)

from .room_builder import ALICE, BOB, CHARLIE, ELLA, ZARA, Room, version_id, versions

V2_VERSIONS = versions(2)
ALL = versions(1)
v2_versions = pytest.mark.parametrize("room_version", V2_VERSIONS, ids=version_id)
all_versions = pytest.mark.parametrize("room_version", ALL, ids=version_id)

PL: StateKey = ("m.room.power_levels", "")
JR: StateKey = ("m.room.join_rules", "")
TOPIC: StateKey = ("m.room.topic", "")


def member(user: str) -> StateKey:
    return ("m.room.member", user)


class Branch:
    """One side of a fork: its own state and head, sharing the room's event map."""

    def __init__(self, room: Room, state: dict[StateKey, Pdu] | None = None) -> None:
        self.room = room
        self.state = dict(room.state if state is None else state)
        self.last = room.last

    def send(
        self,
        event_type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        check: bool = True,
        **kw: Any,
    ) -> Pdu:
        event = self.room.make(
            event_type,
            sender,
            content,
            state_key,
            prev_events=kw.pop("prev_events", [self.last]),
            state=self.state,
            **kw,
        )
        if check:
            check_auth(self.room.room_version, event, self.state)
        self.room.events[event.event_id] = event
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event
        self.last = event.event_id
        return event

    def member(self, user: str, membership: str, sender: str | None = None, **kw: Any) -> Pdu:
        content = {"membership": membership, **kw.pop("content", {})}
        return self.send("m.room.member", sender or user, content, user, **kw)

    def power_levels(
        self,
        sender: str,
        users: dict[str, int],
        *,
        ts: int | None = None,
        name: str | None = None,
        **extra: Any,
    ) -> Pdu:
        if self.room.room_version.privileged_creators:
            users = {u: v for u, v in users.items() if u != self.room.creator}
        content = {"users": users, **extra}
        return self.send("m.room.power_levels", sender, content, "", ts=ts, name=name)

    def ids(self) -> dict[StateKey, str]:
        return {key: event.event_id for key, event in self.state.items()}


def resolve(room: Room, *branches: Branch, **kw: Any) -> dict[StateKey, str]:
    return resolve_state(room.room_version, [b.ids() for b in branches], room.events, **kw)


def started(room_version: RoomVersion, **users: int) -> Room:
    """Alice creates a public room where Bob and Charlie are joined; levels from ``users``."""
    room = Room(room_version).bootstrap(users=users)
    room.join(BOB)
    room.join(CHARLIE)
    return room


# --- scenarios ---------------------------------------------------------------------------


@all_versions
def test_ban_vs_power_levels(room_version: RoomVersion) -> None:
    """Alice demotes Bob while, concurrently, Bob bans Charlie: the demotion wins."""
    room = started(room_version, **{BOB: 50})
    a, b = Branch(room), Branch(room)
    demote = a.power_levels(ALICE, {ALICE: 100, BOB: 0})
    b.member(CHARLIE, "ban", sender=BOB)
    resolved = resolve(room, a, b)
    assert resolved[PL] == demote.event_id
    assert resolved[member(CHARLIE)] == room.state[member(CHARLIE)].event_id


@all_versions
def test_topic_vs_ban(room_version: RoomVersion) -> None:
    """Bob changes the topic while Alice bans him: his topic is undone."""
    room = started(room_version, **{BOB: 50})
    original = room.set_state("m.room.topic", ALICE, {"topic": "original"})
    a, b = Branch(room), Branch(room)
    ban = a.member(BOB, "ban", sender=ALICE)
    b.send("m.room.topic", BOB, {"topic": "bob's"}, "")
    resolved = resolve(room, a, b)
    assert resolved[member(BOB)] == ban.event_id
    assert resolved[TOPIC] == original.event_id


@v2_versions
def test_join_rules_vs_join(room_version: RoomVersion) -> None:
    """Alice makes the room invite-only while Ella joins: Ella's join is not in the state."""
    room = started(room_version)
    a, b = Branch(room), Branch(room)
    invite_only = a.send("m.room.join_rules", ALICE, {"join_rule": "invite"}, "")
    b.member(ELLA, "join")
    resolved = resolve(room, a, b)
    assert resolved[JR] == invite_only.event_id
    assert member(ELLA) not in resolved


def test_join_rules_vs_join_v1_lets_the_join_through() -> None:
    """Room version 1 only resolves *conflicting* keys, so the join (a key the other branch
    lacks) survives: one of the v1 flaws that v2 fixed."""
    room = started(RoomVersions.V1)
    a, b = Branch(room), Branch(room)
    invite_only = a.send("m.room.join_rules", ALICE, {"join_rule": "invite"}, "")
    join = b.member(ELLA, "join")
    resolved = resolve(room, a, b)
    assert resolved[JR] == invite_only.event_id
    assert resolved[member(ELLA)] == join.event_id


@all_versions
def test_concurrent_joins(room_version: RoomVersion) -> None:
    room = started(room_version)
    a, b = Branch(room), Branch(room)
    ella = a.member(ELLA, "join")
    zara = b.member(ZARA, "join")
    a.send("m.room.message", ELLA, {"body": "hi"})
    resolved = resolve(room, a, b)
    assert resolved[member(ELLA)] == ella.event_id
    assert resolved[member(ZARA)] == zara.event_id


@all_versions
def test_power_levels_admin_vs_mod(room_version: RoomVersion) -> None:
    """Alice (100) raises the state default; concurrently Bob (50) promotes Charlie, which
    would need state_default to stay 50: Alice's change is applied first and wins."""
    room = started(room_version, **{BOB: 50})
    a, b = Branch(room), Branch(room)
    levels = {ALICE: 100, BOB: 50}
    admin = a.power_levels(ALICE, levels, state_default=60)
    b.power_levels(BOB, {**levels, CHARLIE: 50})
    assert resolve(room, a, b)[PL] == admin.event_id


@v2_versions
@pytest.mark.parametrize("bob_later", [True, False])
def test_origin_server_ts_tiebreak(room_version: RoomVersion, bob_later: bool) -> None:
    """Two admins change power levels concurrently: the later one is applied last."""
    room = started(room_version, **{BOB: 100})
    a, b = Branch(room), Branch(room)
    levels = {ALICE: 100, BOB: 100}
    alice = a.power_levels(ALICE, levels, events={"m.room.topic": 60}, ts=1000)
    bob = b.power_levels(BOB, levels, events={"m.room.name": 70}, ts=999 + 2 * bob_later)
    if room_version.privileged_creators:
        # Alice is a creator (infinite power), so she sorts first regardless of time.
        assert resolve(room, a, b)[PL] == bob.event_id
    else:
        assert resolve(room, a, b)[PL] == (bob if bob_later else alice).event_id


@pytest.mark.parametrize("room_version", versions(2, 11), ids=version_id)
@pytest.mark.parametrize("bob_id_higher", [True, False])
def test_event_id_tiebreak(room_version: RoomVersion, bob_id_higher: bool) -> None:
    """Same power, same timestamp: the higher event ID sorts later and so wins."""
    room = started(room_version, **{BOB: 100})
    a, b = Branch(room), Branch(room)
    levels = {ALICE: 100, BOB: 100}
    alice_name, bob_name = ("$aaa:x", "$zzz:x") if bob_id_higher else ("$zzz:x", "$aaa:x")
    alice = a.power_levels(ALICE, levels, events={"m.room.topic": 60}, ts=500, name=alice_name)
    bob = b.power_levels(BOB, levels, events={"m.room.name": 70}, ts=500, name=bob_name)
    assert (alice.event_id, bob.event_id) == (alice_name, bob_name)
    assert resolve(room, a, b)[PL] == (bob if bob_id_higher else alice).event_id


@v2_versions
def test_mainline_ordering_of_topics(room_version: RoomVersion) -> None:
    """Concurrent topics: the one authorised by the newer mainline power levels is later."""
    room = started(room_version, **{BOB: 50})
    a, b = Branch(room), Branch(room)
    # Branch a: a topic based on the original power levels, sent *later* in time.
    old_based = a.send("m.room.topic", BOB, {"topic": "old"}, "", ts=10_000)
    # Branch b: Alice updates power levels, then Charlie (promoted) sets a topic.
    b.power_levels(ALICE, {ALICE: 100, BOB: 50, CHARLIE: 50})
    new_based = b.send("m.room.topic", CHARLIE, {"topic": "new"}, "", ts=5_000)
    resolved = resolve(room, a, b)
    assert resolved[TOPIC] == new_based.event_id
    assert old_based.event_id != new_based.event_id


@v2_versions
def test_unconflicted_state_is_reapplied(room_version: RoomVersion) -> None:
    room = started(room_version)
    a, b = Branch(room), Branch(room)
    a.send("m.room.name", ALICE, {"name": "A"}, "")
    b.send("m.room.name", ALICE, {"name": "B"}, "")
    resolved = resolve(room, a, b)
    for key, event in room.state.items():
        assert resolved[key] == event.event_id


# --- MSC4297 (state resolution v2.1, room version 12) ----------------------------------------


def _problem_a(room_version: RoomVersion) -> tuple[Room, dict[StateKey, str], dict[StateKey, str]]:
    """Both sides agree Alice left after making the room invite-only, but one side's state
    (obtained by partial synchronisation) still has the old join rules."""
    room = started(room_version)
    old_join_rules = room.state[JR]
    room.set_state("m.room.join_rules", ALICE, {"join_rule": "invite"})
    room.add(room.member(ALICE, "leave"))
    bob = Branch(room)
    bob.member(BOB, "join", content={"displayname": "bob++"})
    charlie = Branch(room)
    charlie.member(CHARLIE, "join", content={"displayname": "charlie++"})
    charlie_view = charlie.ids()
    charlie_view[JR] = old_join_rules.event_id  # the stale entry
    return room, bob.ids(), charlie_view


def test_msc4297_problem_a_v11_resets_join_rules() -> None:
    room, bob, charlie = _problem_a(RoomVersions.V11)
    resolved = resolve_state(RoomVersions.V11, [bob, charlie], room.events)
    assert JR not in resolved  # both join rules fail: Alice is not in the unconflicted state


def test_msc4297_problem_a_v12_keeps_join_rules() -> None:
    room, bob, charlie = _problem_a(RoomVersions.V12)
    resolved = resolve_state(RoomVersions.V12, [bob, charlie], room.events)
    assert room.events[resolved[JR]].content == {"join_rule": "invite"}
    assert room.events[resolved[member(BOB)]].content["displayname"] == "bob++"
    assert room.events[resolved[member(CHARLIE)]].content["displayname"] == "charlie++"


def _problem_b(room_version: RoomVersion) -> tuple[Room, dict[StateKey, str], dict[StateKey, str]]:
    """Alice promotes Bob, Bob promotes Charlie; one side's state has the original power
    levels, so the intermediate promotion is in neither the conflicted set nor the auth
    difference."""
    room = started(room_version)
    original = room.state[PL]
    room.power_levels(ALICE, {ALICE: 100, BOB: 50})
    room.power_levels(BOB, {ALICE: 100, BOB: 50, CHARLIE: 50})
    zara = Branch(room)
    zara.member(ZARA, "join")
    ella = Branch(room)
    ella.member(ELLA, "join")
    ella.member(ELLA, "join", content={"displayname": "ella++"})
    ella_view = ella.ids()
    ella_view[PL] = original.event_id  # the stale entry
    return room, zara.ids(), ella_view


def test_msc4297_problem_b_v11_resets_power_levels() -> None:
    room, zara, ella = _problem_b(RoomVersions.V11)
    resolved = resolve_state(RoomVersions.V11, [zara, ella], room.events)
    assert room.events[resolved[PL]].content["users"] == {ALICE: 100}


def test_msc4297_problem_b_v12_keeps_power_levels() -> None:
    room, zara, ella = _problem_b(RoomVersions.V12)
    resolved = resolve_state(RoomVersions.V12, [zara, ella], room.events)
    assert room.events[resolved[PL]].content["users"] == {BOB: 50, CHARLIE: 50}
    conflicted = {zara[PL], ella[PL]}
    subgraph = conflicted_subgraph(conflicted, room.events)
    intermediate = room.events[zara[PL]].auth_events  # Bob's promotion is among these
    assert any(room.events[e].type == "m.room.power_levels" for e in subgraph & set(intermediate))


# --- inputs and options ---------------------------------------------------------------------


@all_versions
def test_no_conflicts_and_empty_input(room_version: RoomVersion) -> None:
    room = started(room_version)
    ids = Branch(room).ids()
    assert resolve_state(room_version, [ids, dict(ids)], room.events) == ids
    assert resolve_state(room_version, [], room.events) == {}


@v2_versions
def test_precomputed_auth_chains_give_the_same_result(room_version: RoomVersion) -> None:
    room = started(room_version, **{BOB: 50})
    a, b = Branch(room), Branch(room)
    a.power_levels(ALICE, {ALICE: 100, BOB: 0})
    b.member(CHARLIE, "ban", sender=BOB)
    chains = [auth_chain(s.ids().values(), room.events) | set(s.ids().values()) for s in (a, b)]
    assert resolve(room, a, b, auth_chains=chains) == resolve(room, a, b)


@v2_versions
def test_rejected_auth_events_are_not_used(room_version: RoomVersion) -> None:
    room = started(room_version, **{BOB: 50})
    a, b = Branch(room), Branch(room)
    topic = b.send("m.room.topic", BOB, {"topic": "t"}, "")
    a.send("m.room.name", ALICE, {"name": "n"}, "")
    assert resolve(room, a, b)[TOPIC] == topic.event_id
    # Once Bob's join is known to be rejected it authorises nothing, whether it is found
    # in the partial state or among the topic's auth events.
    bob_join = room.state[member(BOB)].event_id
    assert TOPIC not in resolve(room, a, b, rejected={bob_join})


@v2_versions
def test_unknown_events_are_ignored(room_version: RoomVersion) -> None:
    room = started(room_version)
    a, b = Branch(room), Branch(room)
    a.send("m.room.name", ALICE, {"name": "A"}, "")
    ids_b = b.ids()
    ids_b[("m.room.name", "")] = "$unknown:example.org"
    resolved = resolve_state(room_version, [a.ids(), ids_b], room.events)
    assert resolved[("m.room.name", "")] == a.state[("m.room.name", "")].event_id


def test_v1_no_candidate_passes_auth() -> None:
    """v1: when no candidate of a normal conflict passes auth, the lowest one stays."""
    room = started(RoomVersions.V1, **{BOB: 50})
    before = room.set_state("m.room.topic", BOB, {"topic": "before"})
    a, b = Branch(room), Branch(room)
    ban = a.member(BOB, "ban", sender=ALICE)
    b.send("m.room.topic", BOB, {"topic": "after"}, "")
    resolved = resolve(room, a, b)
    assert resolved[member(BOB)] == ban.event_id
    assert resolved[TOPIC] == before.event_id


def test_v1_normal_conflict_prefers_deepest_passing_event() -> None:
    room = started(RoomVersions.V1, **{BOB: 50})
    room.set_state("m.room.topic", ALICE, {"topic": "before"})
    a, b = Branch(room), Branch(room)
    a.send("m.room.topic", ALICE, {"topic": "a"}, "")
    b.send("m.room.message", BOB, {})
    deeper = b.send("m.room.topic", BOB, {"topic": "b"}, "")
    assert resolve(room, a, b)[TOPIC] == deeper.event_id


def test_v1_power_level_chain_stops_at_first_failure() -> None:
    room = started(RoomVersions.V1, **{BOB: 50})
    a, b = Branch(room), Branch(room)
    demote = a.power_levels(ALICE, {ALICE: 100, BOB: 0})
    b.power_levels(BOB, {ALICE: 100, BOB: 50}, kick=40)
    b.power_levels(BOB, {ALICE: 100, BOB: 50}, kick=30)
    # Ascending depth: the demotion comes first; Bob's change cannot follow it.
    assert resolve(room, a, b)[PL] == demote.event_id


def test_v1_power_level_chain_continues_while_allowed() -> None:
    room = started(RoomVersions.V1, **{BOB: 50})
    a, b = Branch(room), Branch(room)
    a.power_levels(ALICE, {ALICE: 100, BOB: 50}, kick=40)
    b.send("m.room.message", ALICE, {})
    deeper = b.power_levels(ALICE, {ALICE: 100, BOB: 50}, ban=40)
    assert resolve(room, a, b)[PL] == deeper.event_id


# --- building blocks ---------------------------------------------------------------------------


def test_separate_v2_and_v1() -> None:
    k1, k2, k3 = ("a", ""), ("b", ""), ("c", "")
    s1 = {k1: "$1", k2: "$2", k3: "$3"}
    s2 = {k1: "$1", k2: "$x"}
    unconflicted, conflicted = separate([s1, s2])
    assert unconflicted == {k1: "$1"}
    assert conflicted == {k2: {"$2", "$x"}, k3: {"$3"}}
    unconflicted, conflicted = separate_v1([s1, s2, {k2: "$y"}])
    assert unconflicted == {k1: "$1", k3: "$3"}
    assert conflicted == {k2: {"$2", "$x", "$y"}}


def test_is_power_event() -> None:
    room = started(RoomVersions.V10, **{BOB: 50})
    assert is_power_event(room.state[PL])
    assert is_power_event(room.state[JR])
    assert not is_power_event(room.create)
    assert not is_power_event(room.state[member(BOB)])
    assert is_power_event(room.member(CHARLIE, "ban", sender=BOB))
    assert is_power_event(room.member(CHARLIE, "leave", sender=BOB))
    assert not is_power_event(room.member(CHARLIE, "leave"))
    assert not is_power_event(room.make("m.room.power_levels", ALICE, {}))  # not state
    assert not is_power_event(room.make("m.room.power_levels", ALICE, {}, state_key="x"))


def test_auth_chain_and_difference() -> None:
    room = started(RoomVersions.V10)
    join = room.state[member(CHARLIE)]
    chain = auth_chain([join.event_id], room.events)
    assert room.create.event_id in chain and join.event_id not in chain
    assert auth_chain(["$unknown"], room.events) == set()
    assert auth_difference([{"a", "b"}, {"b", "c"}]) == {"a", "c"}
    assert auth_difference([]) == set()


def test_lexicographic_topological_sort() -> None:
    graph = {"d": {"b", "c"}, "b": {"a"}, "c": {"a"}, "a": set()}
    assert lexicographic_topological_sort(graph, key=lambda n: n) == ["a", "b", "c", "d"]
    assert lexicographic_topological_sort(graph, key=lambda n: -ord(n)) == ["a", "c", "b", "d"]


def test_conflicted_subgraph_only_keeps_paths_between_conflicts() -> None:
    def ev(event_id: str, *auth: str) -> Pdu:
        return Pdu(
            event_id=event_id,
            room_id="!r:x",
            sender="@a:x",
            type="t",
            state_key="",
            content={},
            prev_events=(),
            auth_events=auth,
            depth=1,
            origin_server_ts=0,
        )

    # c1 -> m1 -> m2 -> c2 -> root ; c1 -> side ; m2 -> other_root
    events = [
        ev("$c1", "$m1", "$side"),
        ev("$m1", "$m2"),
        ev("$m2", "$c2", "$other_root"),
        ev("$c2", "$root"),
        ev("$root"),
        ev("$side", "$root"),
        ev("$other_root"),
    ]
    event_map = {e.event_id: e for e in events}
    assert conflicted_subgraph({"$c1", "$c2"}, event_map) == {"$c1", "$m1", "$m2", "$c2"}
    assert conflicted_subgraph({"$c1"}, event_map) == {"$c1"}
    assert conflicted_subgraph({"$c1", "$root"}, event_map) == set(event_map) - {"$other_root"}


def test_mainline_sort_positions() -> None:
    room = started(RoomVersions.V10, **{BOB: 50})
    pl1 = room.state[PL]
    early = room.send("m.room.topic", BOB, {"topic": "1"}, state_key="", ts=900)
    pl2 = room.power_levels(ALICE, {ALICE: 100, BOB: 50}, kick=10)
    late = room.send("m.room.topic", BOB, {"topic": "2"}, state_key="", ts=100)
    no_pl = room.make("m.room.topic", BOB, {"topic": "3"}, state_key="", auth_events=[], ts=999)
    room.events[no_pl.event_id] = no_pl
    order = mainline_sort(
        {early.event_id, late.event_id, no_pl.event_id}, pl2.event_id, room.events
    )
    assert order == [no_pl.event_id, early.event_id, late.event_id]
    assert mainline_sort(set(), pl1.event_id, room.events) == []
    # without any resolved power levels, everything has position infinity: by timestamp
    assert mainline_sort({early.event_id, late.event_id}, None, room.events) == [
        late.event_id,
        early.event_id,
    ]
    # a power levels event outside the mainline falls back through its ancestors
    side_pl = room.make(
        "m.room.power_levels",
        ALICE,
        {"users": {ALICE: 100, BOB: 50}},
        state_key="",
        auth_events=[room.create.event_id, pl1.event_id, room.state[member(ALICE)].event_id],
    )
    room.events[side_pl.event_id] = side_pl
    side_topic = room.make(
        "m.room.topic",
        BOB,
        {"topic": "4"},
        state_key="",
        ts=1,
        auth_events=[room.create.event_id, side_pl.event_id, room.state[member(BOB)].event_id],
    )
    room.events[side_topic.event_id] = side_topic
    order = mainline_sort({side_topic.event_id, late.event_id}, pl2.event_id, room.events)
    assert order == [side_topic.event_id, late.event_id]


def test_iterative_auth_checks_skips_non_state_and_rejects() -> None:
    room = started(RoomVersions.V10)
    message = room.send("m.room.message", ALICE, {"body": "x"})
    bad_topic = room.make("m.room.topic", ELLA, {"topic": "x"}, state_key="")
    room.events[bad_topic.event_id] = bad_topic
    base = {k: v.event_id for k, v in room.state.items()}
    result = iterative_auth_checks(
        RoomVersions.V10, [message.event_id, bad_topic.event_id], base, room.events
    )
    assert result == base


def test_v2_algorithm_on_v12_room_uses_create_from_room_id() -> None:
    room = started(RoomVersions.V12)
    a, b = Branch(room), Branch(room)
    topic = a.send("m.room.topic", ALICE, {"topic": "t"}, "")
    b.send("m.room.name", ALICE, {"name": "n"}, "")
    assert room.create.event_id not in topic.auth_events
    resolved = resolve_state_v2(RoomVersions.V12, [a.ids(), b.ids()], room.events)
    assert resolved[TOPIC] == topic.event_id


def test_state_after() -> None:
    room = started(RoomVersions.V10)
    before = {k: v.event_id for k, v in room.state.items()}
    message = room.make("m.room.message", ALICE, {})
    assert state_after(before, message) == before
    topic = room.make("m.room.topic", ALICE, {"topic": "t"}, state_key="")
    assert state_after(before, topic) == {**before, TOPIC: topic.event_id}


def test_mainline_sort_survives_forged_power_level_cycles() -> None:
    def pl(event_id: str, parent: str) -> Pdu:
        return Pdu(
            event_id=event_id,
            room_id="!r:x",
            sender="@a:x",
            type="m.room.power_levels",
            state_key="",
            content={},
            prev_events=(),
            auth_events=(parent,),
            depth=1,
            origin_server_ts=0,
        )

    topic = Pdu(
        event_id="$topic",
        room_id="!r:x",
        sender="@a:x",
        type="m.room.topic",
        state_key="",
        content={},
        prev_events=(),
        auth_events=("$a",),
        depth=1,
        origin_server_ts=0,
    )
    event_map = {"$a": pl("$a", "$b"), "$b": pl("$b", "$a"), "$topic": topic, "$p": pl("$p", "$p")}
    assert mainline_sort({"$topic"}, "$p", event_map) == ["$topic"]


@v2_versions
def test_three_way_fork(room_version: RoomVersion) -> None:
    room = started(room_version, **{BOB: 50})
    a, b, c = Branch(room), Branch(room), Branch(room)
    ella = a.member(ELLA, "join")
    b.send("m.room.topic", BOB, {"topic": "b"}, "")
    demote = c.power_levels(ALICE, {ALICE: 100, BOB: 0})
    resolved = resolve(room, a, b, c)
    assert resolved[member(ELLA)] == ella.event_id
    assert resolved[PL] == demote.event_id
    assert TOPIC not in resolved  # Bob lost the power to set it
