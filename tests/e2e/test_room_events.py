"""Events in rooms against the real server: sending, state and power levels, redaction
per room version, /messages pagination, /context, unsigned data and history visibility.

https://spec.matrix.org/latest/client-server-api/#events
https://spec.matrix.org/latest/client-server-api/#room-history-visibility
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.e2e._rooms_server import (
    TEXT,
    RoomsClient,
    bodies,
    ids,
    message,
    new_client,
    q,
    state_map,
    txn,
)


@pytest.fixture(scope="module")
def alice(http: httpx.Client) -> RoomsClient:
    return new_client(http, "ev-alice")


@pytest.fixture(scope="module")
def bob(http: httpx.Client) -> RoomsClient:
    return new_client(http, "ev-bob")


@pytest.fixture(scope="module")
def long_room(alice: RoomsClient, bob: RoomsClient) -> tuple[str, list[str]]:
    """A public room with 130 messages, alternately from alice and bob (m0..m129), plus a
    few with a url; returns the room and the message event IDs in order."""
    room_id = alice.create_room(preset="public_chat", name="long")
    bob.join(room_id)
    sent = []
    for i in range(130):
        sender = alice if i % 2 == 0 else bob
        extra = {"url": f"mxc://localhost/{i}"} if i % 10 == 0 else {}
        sent.append(sender.send(room_id, message(f"m{i}", **extra)))
    return room_id, sent


# -- sending, state and power levels -----------------------------------------------------------


def test_send_is_idempotent_per_device_and_path(alice: RoomsClient, bob: RoomsClient) -> None:
    room_id = alice.create_room(preset="public_chat")
    other_room = alice.create_room(preset="public_chat")
    bob.join(room_id)
    txn_id = txn()
    first = alice.send(room_id, message("once"), txn_id=txn_id)
    # A retransmission (same device, same path) answers the same event and sends nothing.
    assert alice.send(room_id, message("once"), txn_id=txn_id) == first
    assert alice.send(room_id, message("changed body"), txn_id=txn_id) == first
    # Another device, another user, another room or event type: new requests.
    second_device = alice.other_device()
    assert second_device.send(room_id, message("dev2"), txn_id=txn_id) != first
    assert bob.send(room_id, message("bob"), txn_id=txn_id) != first
    elsewhere = alice.send(other_room, message("other room"), txn_id=txn_id)
    assert elsewhere != first
    assert alice.event(other_room, elsewhere)["room_id"] == other_room
    custom = alice.send(room_id, {"x": 1}, event_type="org.example.custom", txn_id=txn_id)
    assert custom != first
    # /redact has its own transaction IDs: the same txn ID redacts, and is idempotent.
    redaction = alice.redact(room_id, custom, txn_id=txn_id)
    assert redaction not in (first, custom)
    assert alice.redact(room_id, custom, txn_id=txn_id) == redaction
    assert alice.event(room_id, custom)["unsigned"]["redacted_because"]["event_id"] == redaction
    timeline = alice.all_messages(room_id)
    assert bodies(timeline).count("once") == 1
    assert "changed body" not in bodies(timeline)
    assert [e["type"] for e in timeline].count("m.room.redaction") == 1


def test_state_set_get_and_power_levels(alice: RoomsClient, bob: RoomsClient) -> None:
    """A normal member of a private_chat cannot set the name (needs 50); can once given 50."""
    for version in ("10", "12"):
        room_id = alice.create_room(preset="private_chat", room_version=version)
        alice.invite(room_id, bob.user_id)
        bob.join(room_id)
        levels = alice.state_event(room_id, "m.room.power_levels")
        assert levels["events"]["m.room.name"] == 50
        if version == "12":  # creators have infinite power and are not listed
            assert levels["users"] == {}
        else:
            assert levels["users"] == {alice.user_id: 100}

        bob.set_state(room_id, "m.room.name", {"name": "bob's"}, status=403, errcode="M_FORBIDDEN")
        bob.set_state(
            room_id,
            "m.room.power_levels",
            {**levels, "users": {bob.user_id: 100}},
            status=403,
            errcode="M_FORBIDDEN",
        )
        alice.state_event(room_id, "m.room.name", status=404, errcode="M_NOT_FOUND")

        alice.set_state(
            room_id,
            "m.room.power_levels",
            {**levels, "users": {**levels["users"], bob.user_id: 50}},
        )
        named = bob.set_state(room_id, "m.room.name", {"name": "bob's"})
        assert alice.state_event(room_id, "m.room.name") == {"name": "bob's"}
        full = alice.state_event(room_id, "m.room.name", format="event")
        assert full["event_id"] == named
        assert full["sender"] == bob.user_id
        # 50 is not enough to raise oneself to 100, nor to change power levels (100).
        levels = alice.state_event(room_id, "m.room.power_levels")
        bob.set_state(
            room_id,
            "m.room.power_levels",
            {**levels, "users": {bob.user_id: 100}},
            status=403,
            errcode="M_FORBIDDEN",
        )
        bob.set_state(
            room_id,
            "m.room.history_visibility",
            {"history_visibility": "joined"},
            status=403,
            errcode="M_FORBIDDEN",
        )
        # State with any key and custom types (state_default 50).
        bob.set_state(room_id, "org.example.widget", {"url": "x"}, "widget/1")
        got = alice.state_event(room_id, "org.example.widget", "widget/1")
        assert got == {"url": "x"}
        # Setting identical content again is a no-op answering the same event.
        again = bob.set_state(room_id, "org.example.widget", {"url": "x"}, "widget/1")
        assert (
            again
            == alice.state_event(room_id, "org.example.widget", "widget/1", format="event")[
                "event_id"
            ]
        )
        # Demoted again: forbidden again.
        alice.set_state(
            room_id, "m.room.power_levels", {**levels, "users": levels["users"] | {bob.user_id: 0}}
        )
        bob.set_state(room_id, "m.room.name", {"name": "no"}, status=403, errcode="M_FORBIDDEN")
        assert alice.state_event(room_id, "m.room.name") == {"name": "bob's"}


def test_events_default_and_redact_levels(alice: RoomsClient, bob: RoomsClient) -> None:
    room_id = alice.create_room(
        preset="public_chat",
        room_version="11",
        power_level_content_override={"events_default": 10, "events": {"org.example.low": 0}},
    )
    bob.join(room_id)
    count = len(alice.all_messages(room_id))
    bob.send(room_id, status=403, errcode="M_FORBIDDEN")
    own = bob.send(room_id, {"x": 1}, event_type="org.example.low")
    assert len(alice.all_messages(room_id)) == count + 1
    theirs = alice.send(room_id)
    bob.redact(room_id, theirs, status=403, errcode="M_FORBIDDEN")
    assert "redacted_because" not in bob.event(room_id, theirs)["unsigned"]
    # Anyone may redact their own events (with the power to send a redaction).
    levels = alice.state_event(room_id, "m.room.power_levels")
    alice.set_state(room_id, "m.room.power_levels", {**levels, "events_default": 0})
    bob.redact(room_id, own)
    assert bob.event(room_id, own)["content"] == {}
    alice.redact(room_id, bob.send(room_id))


@pytest.mark.parametrize("version", ["1", "10", "12"])
def test_redacting_others_needs_the_redact_level(
    alice: RoomsClient, bob: RoomsClient, http: httpx.Client, version: str
) -> None:
    """All users here are on one server, and the auth rules accept a redaction whose
    sender shares the target's server: the client API must check the redact level."""
    carol = new_client(http, "ev-carol")
    room_id = alice.create_room(preset="public_chat", room_version=version)
    bob.join(room_id)
    carol.join(room_id)
    theirs = alice.send(room_id, message("alice's"))
    carols = carol.send(room_id, message("carol's"))
    before = ids(alice.all_messages(room_id))
    bob.redact(room_id, theirs, status=403, errcode="M_FORBIDDEN")
    bob.redact(room_id, carols, status=403, errcode="M_FORBIDDEN")
    assert ids(alice.all_messages(room_id)) == before
    assert alice.event(room_id, theirs)["content"]["body"] == "alice's"
    # Own events: always.
    own = bob.send(room_id, message("bob's"))
    bob.redact(room_id, own)
    assert alice.event(room_id, own)["content"] == {}
    # With the redact level (50), others' events too.
    levels = alice.state_event(room_id, "m.room.power_levels")
    alice.set_state(
        room_id, "m.room.power_levels", {**levels, "users": {**levels["users"], bob.user_id: 50}}
    )
    bob.redact(room_id, carols)
    assert alice.event(room_id, carols)["content"] == {}


# -- redaction and room versions ------------------------------------------------------------


ROOM_VERSIONS = ["1", "3", "4", "10", "11", "12"]


def _num(version: str) -> int:
    return int(version)


@pytest.mark.parametrize("version", ROOM_VERSIONS)
def test_room_version_send_state_redact(alice: RoomsClient, bob: RoomsClient, version: str) -> None:
    room_id = alice.create_room(preset="public_chat", room_version=version, topic="t")
    create = alice.state_event(room_id, "m.room.create", format="event")
    assert create["content"]["room_version"] == version
    if _num(version) >= 12:
        # v12: the room ID is the create event's ID (with '!'), with no server name.
        assert ":" not in room_id
        assert room_id[1:] == create["event_id"][1:]
    else:
        assert room_id.endswith(":localhost")
    if _num(version) >= 11:
        assert "creator" not in create["content"]
    else:
        assert create["content"]["creator"] == alice.user_id
    bob.join(room_id)

    # Messages: find one whose ID needs URL-encoding in v3 ('/' or '+').
    sent = [alice.send(room_id, message(f"secret {i}", extra={"nested": i})) for i in range(3)]
    if version == "3":
        for i in range(60):
            if any(c in sent[-1] for c in "/+"):
                break
            sent.append(alice.send(room_id, message(f"more {i}", extra={"nested": i})))
        assert any(c in sent[-1] for c in "/+"), "no v3 event ID with '/' or '+'"
    for event_id in sent:
        if version == "1":
            assert event_id.endswith(":localhost")
        else:
            assert ":" not in event_id
        if _num(version) >= 4:
            assert not any(c in event_id for c in "/+")
    target = sent[-1]
    assert alice.event(room_id, target)["event_id"] == target
    context = alice.context(room_id, target, limit=2)
    assert context["event"]["event_id"] == target

    # A state event whose content is partly protected from redaction.
    rules = {
        "join_rule": "public",
        "allow": [{"type": "m.room_membership", "room_id": "!elsewhere:localhost"}],
        "note": "gone after redaction",
    }
    rules_id = alice.set_state(room_id, "m.room.join_rules", rules)
    levels = alice.state_event(room_id, "m.room.power_levels")
    levels_id = alice.set_state(room_id, "m.room.power_levels", {**levels, "invite": 0})

    redactions = {
        event_id: alice.redact(room_id, event_id, reason="cleanup")
        for event_id in (target, rules_id, levels_id)
    }

    message_event = bob.event(room_id, target)
    assert message_event["content"] == {}
    assert message_event["type"] == TEXT
    assert message_event["sender"] == alice.user_id
    because = message_event["unsigned"]["redacted_because"]
    assert because["event_id"] == redactions[target]
    assert because["type"] == "m.room.redaction"
    assert because["content"]["reason"] == "cleanup"
    if _num(version) >= 11:
        assert because["content"]["redacts"] == target
    else:
        assert because["redacts"] == target

    rules_event = bob.event(room_id, rules_id)
    expected_rules = {"join_rule": "public"}
    if _num(version) >= 8:
        expected_rules["allow"] = rules["allow"]
    assert rules_event["content"] == expected_rules
    assert rules_event["unsigned"]["redacted_because"]["event_id"] == redactions[rules_id]
    # The current state is the redacted event.
    assert bob.state_event(room_id, "m.room.join_rules") == expected_rules

    levels_event = bob.event(room_id, levels_id)
    assert ("invite" in levels_event["content"]) == (_num(version) >= 11)
    assert "notifications" not in levels_event["content"]
    assert levels_event["content"]["users"] == levels["users"]

    # /messages and /context show the same pruned events.
    timeline = {e["event_id"]: e for e in bob.all_messages(room_id, limit=50)}
    assert timeline[target]["content"] == {}
    assert timeline[target]["unsigned"]["redacted_because"]["event_id"] == redactions[target]
    assert timeline[rules_id]["content"] == expected_rules
    for event_id in sent[:-1]:
        assert timeline[event_id]["content"]["body"].startswith(("secret", "more"))
    context = bob.context(room_id, target, limit=4)
    assert context["event"]["content"] == {}
    # The redaction itself is in the timeline, fetchable by its (encoded) ID.
    assert bob.event(room_id, redactions[target])["type"] == "m.room.redaction"

    # The room still works after its power levels were redacted.
    alice.send(room_id, message("still alive"))
    assert bob.all_messages(room_id, limit=5)[0]["content"]["body"] == "still alive"


def test_redacting_twice_and_redacting_a_redaction(alice: RoomsClient) -> None:
    room_id = alice.create_room(room_version="11")
    event_id = alice.send(room_id, message("x"))
    first = alice.redact(room_id, event_id, reason="one")
    second = alice.redact(room_id, event_id, reason="two")
    assert first != second
    event = alice.event(room_id, event_id)
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]["event_id"] in (first, second)
    alice.redact(room_id, first)
    assert alice.event(room_id, first)["content"] == {"redacts": event_id}


# -- pagination --------------------------------------------------------------------------------


def test_messages_backwards_and_forwards(
    alice: RoomsClient, long_room: tuple[str, list[str]]
) -> None:
    room_id, sent = long_room
    newest_first = [e for e in alice.all_messages(room_id, "b", limit=25) if e["type"] == TEXT]
    assert ids(newest_first) == sent[::-1]
    oldest_first = [e for e in alice.all_messages(room_id, "f", limit=25) if e["type"] == TEXT]
    assert ids(oldest_first) == sent
    # The whole timeline, both ways, starts with the create event and has no duplicates.
    everything = alice.all_messages(room_id, "f", limit=40)
    assert everything[0]["type"] == "m.room.create"
    assert len(set(ids(everything))) == len(everything)
    assert ids(alice.all_messages(room_id, "b", limit=40)) == ids(everything)[::-1]

    page = alice.messages(room_id, dir="b", limit=10)
    assert ids(page["chunk"]) == sent[:-11:-1]
    assert page["start"] and page["end"]
    following = alice.messages(room_id, dir="b", from_=page["end"], limit=10)
    assert following["start"] == page["end"]
    assert ids(following["chunk"]) == sent[-11:-21:-1]
    # Going forwards from the end of a backwards page returns what it skipped over.
    back_again = alice.messages(room_id, dir="f", from_=following["end"], limit=20)
    assert ids(back_again["chunk"]) == sent[-20:]
    # A limit of zero returns nothing.
    assert alice.messages(room_id, dir="b", limit=0)["chunk"] == []


def test_messages_with_to(alice: RoomsClient, long_room: tuple[str, list[str]]) -> None:
    room_id, sent = long_room
    token_80 = alice.messages(room_id, dir="b", limit=80)["end"]  # before the 80 newest
    token_30 = alice.messages(room_id, dir="b", limit=30)["end"]  # before the 30 newest
    newest_30 = alice.messages(room_id, dir="b", to=token_30, limit=1000)
    assert ids(newest_30["chunk"]) == sent[:-31:-1]
    assert "end" not in newest_30
    between_f = alice.all_messages(room_id, "f", from_=token_80, to=token_30, limit=7)
    assert ids(between_f) == sent[-80:-30]
    between_b = alice.all_messages(room_id, "b", from_=token_30, to=token_80, limit=7)
    assert ids(between_b) == sent[-31:-81:-1]
    # `to` in the wrong direction: nothing.
    assert alice.messages(room_id, dir="f", from_=token_30, to=token_80)["chunk"] == []


def test_messages_with_filters(
    alice: RoomsClient, bob: RoomsClient, long_room: tuple[str, list[str]]
) -> None:
    room_id, sent = long_room

    def filtered(direction: str, limit: int, **filter_: Any) -> list[dict[str, Any]]:
        return alice.all_messages(room_id, direction, limit=limit, filter=json.dumps(filter_))

    from_bob = filtered("b", 15, senders=[bob.user_id], types=[TEXT])
    assert ids(from_bob) == sent[1::2][::-1]
    not_bob = filtered("f", 15, not_senders=[bob.user_id], types=["m.room.mess*"])
    assert ids(not_bob) == sent[0::2]
    with_url = filtered("f", 5, contains_url=True)
    assert ids(with_url) == sent[0::10]
    no_messages = filtered("f", 50, not_types=[TEXT])
    assert no_messages and all(e["type"] != TEXT for e in no_messages)
    state_only = filtered("f", 50, types=["m.room.*"], not_types=[TEXT, "m.room.member"])
    assert {e["type"] for e in state_only} >= {"m.room.create", "m.room.power_levels"}
    # The filter's own limit caps the page.
    page = alice.messages(room_id, dir="b", limit=50, filter=json.dumps({"limit": 3}))
    assert len(page["chunk"]) == 3
    # lazy_load_members adds the senders' member events as `state`.
    page = alice.messages(room_id, dir="b", limit=4, filter=json.dumps({"lazy_load_members": True}))
    members = {e["state_key"] for e in page["state"]}
    assert members == {alice.user_id, bob.user_id}
    assert all(e["type"] == "m.room.member" for e in page["state"])


def test_context_around_an_event(
    alice: RoomsClient, bob: RoomsClient, long_room: tuple[str, list[str]]
) -> None:
    room_id, sent = long_room
    middle = sent[60]
    context = bob.context(room_id, middle, limit=10)
    assert context["event"]["event_id"] == middle
    assert context["event"]["content"]["body"] == "m60"
    # events_before newest first, events_after oldest first.
    assert ids(context["events_before"]) == sent[59:54:-1]
    assert ids(context["events_after"]) == sent[61:66]
    state = state_map(context["state"])
    assert ("m.room.create", "") in state
    assert (("m.room.member", bob.user_id)) in state
    # The tokens continue where the context stopped.
    before = bob.messages(room_id, dir="b", from_=context["start"], limit=3)
    assert ids(before["chunk"]) == sent[54:51:-1]
    after = bob.messages(room_id, dir="f", from_=context["end"], limit=3)
    assert ids(after["chunk"]) == sent[66:69]
    # Filtered context: only bob's messages around.
    only_bob = bob.context(room_id, middle, limit=4, filter=json.dumps({"senders": [bob.user_id]}))
    assert ids(only_bob["events_before"]) == [sent[59], sent[57]]
    assert ids(only_bob["events_after"]) == [sent[61], sent[63]]
    lazy = bob.context(
        room_id, middle, limit=2, filter=json.dumps({"lazy_load_members": True, "types": [TEXT]})
    )
    assert {e["state_key"] for e in lazy["state"] if e["type"] == "m.room.member"} == {
        alice.user_id,
        bob.user_id,
    }
    # Zero limit: just the event.
    bare = bob.context(room_id, middle, limit=0)
    assert bare["events_before"] == bare["events_after"] == []
    # The first and last events of the room.
    first = bob.context(room_id, alice.all_messages(room_id, "f", limit=1)[0]["event_id"])
    assert first["events_before"] == []
    last = bob.context(room_id, sent[-1], limit=6)
    assert last["events_after"] == []


# -- unsigned ------------------------------------------------------------------------------


def test_unsigned_age_transaction_id_and_prev_content(alice: RoomsClient, bob: RoomsClient) -> None:
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    txn_id = txn()
    event_id = alice.send(room_id, message("mine"), txn_id=txn_id)
    other_device = alice.other_device()

    def unsigned_everywhere(client: RoomsClient) -> list[dict[str, Any]]:
        by_event = client.event(room_id, event_id)["unsigned"]
        by_messages = next(
            e for e in client.messages(room_id, limit=5)["chunk"] if e["event_id"] == event_id
        )["unsigned"]
        by_context = client.context(room_id, event_id)["event"]["unsigned"]
        return [by_event, by_messages, by_context]

    for unsigned in unsigned_everywhere(alice):
        assert unsigned["transaction_id"] == txn_id
        assert isinstance(unsigned["age"], int)
        assert 0 <= unsigned["age"] < 60_000
    for client in (other_device, bob):
        for unsigned in unsigned_everywhere(client):
            assert "transaction_id" not in unsigned
            assert isinstance(unsigned["age"], int)

    first_topic = alice.set_state(room_id, "m.room.topic", {"topic": "one"})
    second_topic = alice.set_state(room_id, "m.room.topic", {"topic": "two"})
    first = bob.event(room_id, first_topic)
    assert "prev_content" not in first["unsigned"]
    assert "replaces_state" not in first["unsigned"]
    second = bob.event(room_id, second_topic)
    assert second["unsigned"]["prev_content"] == {"topic": "one"}
    assert second["unsigned"]["replaces_state"] == first_topic
    assert "transaction_id" not in second["unsigned"]
    in_state = state_map(bob.state(room_id))[("m.room.topic", "")]
    assert in_state["unsigned"]["replaces_state"] == first_topic
    assert in_state["unsigned"]["prev_content"] == {"topic": "one"}

    # Membership changes carry the previous membership.
    bob.leave(room_id)
    leave = state_map(alice.state(room_id))[("m.room.member", bob.user_id)]
    assert leave["content"]["membership"] == "leave"
    assert leave["unsigned"]["prev_content"]["membership"] == "join"
    # Redacting a state event drops its prev_content but keeps replaces_state.
    alice.redact(room_id, second_topic)
    redacted = alice.event(room_id, second_topic)["unsigned"]
    assert "prev_content" not in redacted
    assert redacted["redacted_because"]["sender"] == alice.user_id


# -- history visibility ----------------------------------------------------------------------

VISIBLE_TO = {
    # visibility: (what bob, who joined late, sees; what carol, who left, sees).
    # Those who left see nothing sent after their leave, even in a world_readable room
    # (where dave, who never joined, sees everything): the server caps departed users at
    # their leave, as the spec's "no events received after they left" asks.
    "shared": ({"m0", "m1", "m2", "m3"}, {"m0", "m1", "m2"}),
    "invited": ({"m1", "m2", "m3"}, {"m0", "m1", "m2"}),
    "joined": ({"m2", "m3"}, {"m0", "m1", "m2"}),
    "world_readable": ({"m0", "m1", "m2", "m3"}, {"m0", "m1", "m2"}),
}


@pytest.mark.parametrize("visibility", list(VISIBLE_TO))
def test_history_visibility(http: httpx.Client, visibility: str) -> None:
    """Timeline: carol joins, m0, bob invited, m1, bob joins, m2, carol leaves, m3, topic.

    bob joined late, carol left, dave never was a member.
    """
    alice, bob, carol, dave = (new_client(http, f"hv-{n}") for n in "abcd")
    room_id = alice.create_room(
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": visibility}}
        ],
        topic="before",
    )
    carol.join(room_id)
    sent = {"m0": alice.send(room_id, message("m0"))}
    alice.invite(room_id, bob.user_id)
    sent["m1"] = alice.send(room_id, message("m1"))
    bob.join(room_id)
    sent["m2"] = alice.send(room_id, message("m2"))
    carol.leave(room_id)
    sent["m3"] = alice.send(room_id, message("m3"))
    alice.set_state(room_id, "m.room.topic", {"topic": "after"})

    bob_sees, carol_sees = VISIBLE_TO[visibility]
    dave_sees = set(sent) if visibility == "world_readable" else set()
    for viewer, expected in ((bob, bob_sees), (carol, carol_sees), (dave, dave_sees)):
        who = viewer.user_id
        if viewer is dave and not expected:
            viewer.messages(room_id, status=403, errcode="M_FORBIDDEN")
        else:
            timeline = viewer.all_messages(room_id, "b", limit=3)
            assert set(bodies(timeline)) == expected, (visibility, who)
            forwards = viewer.all_messages(room_id, "f", limit=4)
            assert ids(forwards) == ids(timeline)[::-1]
        for name, event_id in sent.items():
            if name in expected:
                assert viewer.event(room_id, event_id)["content"]["body"] == name
                context = viewer.context(room_id, event_id, limit=20)
                around = context["events_before"] + context["events_after"]
                assert set(bodies(around)) == expected - {name}, (visibility, who, name)
            else:
                viewer.event(room_id, event_id, status=404, errcode="M_NOT_FOUND")
                viewer.context(room_id, event_id, status=404, errcode="M_NOT_FOUND")

    # Users always see their own membership changes.
    own = {
        e["content"]["membership"]
        for e in bob.all_messages(room_id)
        if e["type"] == "m.room.member" and e["state_key"] == bob.user_id
    }
    assert own >= {"join"}
    own = [
        e["content"]["membership"]
        for e in carol.all_messages(room_id, "f")
        if e["type"] == "m.room.member" and e["state_key"] == carol.user_id
    ]
    assert own == ["join", "leave"]

    # /state: members now; the state as of their leave for those who left; nothing else.
    assert state_map(bob.state(room_id))[("m.room.topic", "")]["content"]["topic"] == "after"
    carol_state = state_map(carol.state(room_id))
    assert carol_state[("m.room.topic", "")]["content"]["topic"] == "before"
    assert carol_state[("m.room.member", carol.user_id)]["content"]["membership"] == "leave"
    assert carol.state_event(room_id, "m.room.topic")["topic"] == "before"
    dave.state(room_id, status=403, errcode="M_FORBIDDEN")
    dave.state_event(room_id, "m.room.topic", status=403, errcode="M_FORBIDDEN")
    dave.members(room_id, status=403, errcode="M_FORBIDDEN")
    carol.joined_members(room_id, status=403, errcode="M_FORBIDDEN")
    assert set(bob.joined_members(room_id)["joined"]) == {alice.user_id, bob.user_id}


def test_visibility_changes_apply_from_the_event_on(http: httpx.Client) -> None:
    """Visibility is judged by the state at each event, so switching it later changes
    nothing about earlier events; the switch events themselves are seen from either side."""
    alice, bob, dave = (new_client(http, f"hv2-{n}") for n in "abd")
    room_id = alice.create_room(preset="public_chat")  # shared
    shared_msg = alice.send(room_id, message("while shared"))
    to_joined = alice.set_state(
        room_id, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    joined_msg = alice.send(room_id, message("while joined"))
    to_world = alice.set_state(
        room_id, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    world_msg = alice.send(room_id, message("while world readable"))
    back = alice.set_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    last_msg = alice.send(room_id, message("joined again"))

    bob.join(room_id)
    bob_sees = set(ids(bob.all_messages(room_id)))
    assert {shared_msg, world_msg, to_joined, to_world, back} <= bob_sees
    assert joined_msg not in bob_sees
    assert last_msg not in bob_sees

    # A non-member may read /messages only while the room is world readable now: here not.
    dave.messages(room_id, status=403, errcode="M_FORBIDDEN")
    # But single events that were world readable are visible, and so are both switches
    # into and out of world_readable.
    assert dave.event(room_id, world_msg)["content"]["body"] == "while world readable"
    assert dave.event(room_id, to_world)["content"]["history_visibility"] == "world_readable"
    assert dave.event(room_id, back)["content"]["history_visibility"] == "joined"
    for hidden in (shared_msg, joined_msg, to_joined, last_msg):
        dave.event(room_id, hidden, status=404, errcode="M_NOT_FOUND")


def test_invitee_who_never_joined_sees_no_shared_history(http: httpx.Client) -> None:
    alice, erin, frank = (new_client(http, f"hv3-{n}") for n in "aef")
    room_id = alice.create_room(preset="private_chat")  # shared
    secret = alice.send(room_id, message("secret"))
    alice.invite(room_id, erin.user_id)
    alice.invite(room_id, frank.user_id)
    erin.leave(room_id)  # rejects the invite
    assert bodies(erin.all_messages(room_id)) == []
    erin.event(room_id, secret, status=404, errcode="M_NOT_FOUND")
    # Banned without ever joining: nothing either.
    alice.member_action("ban", room_id, frank.user_id)
    assert bodies(frank.all_messages(room_id)) == []
    frank.event(room_id, secret, status=404, errcode="M_NOT_FOUND")
    # Someone who joined (then left) sees the shared history up to their leave.
    alice.invite(room_id, erin.user_id)
    erin.join(room_id)
    after = alice.send(room_id, message("while erin was in"))
    erin.leave(room_id)
    alice.send(room_id, message("after erin left"))
    assert bodies(erin.all_messages(room_id)) == ["while erin was in", "secret"]
    assert erin.event(room_id, after)["content"]["body"] == "while erin was in"


def test_forgotten_room_history_is_gone(http: httpx.Client) -> None:
    alice, bob = new_client(http, "fg-a"), new_client(http, "fg-b")
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    event_id = alice.send(room_id, message("before forget"))
    bob.leave(room_id)
    assert "before forget" in bodies(bob.all_messages(room_id))
    bob.forget(room_id)
    bob.messages(room_id, status=403, errcode="M_FORBIDDEN")
    bob.event(room_id, event_id, status=404, errcode="M_NOT_FOUND")
    bob.state(room_id, status=403, errcode="M_FORBIDDEN")
    # Rejoining brings it back (shared history).
    bob.join(room_id)
    assert "before forget" in bodies(bob.all_messages(room_id))


def test_state_event_with_url_encoded_keys(alice: RoomsClient) -> None:
    room_id = alice.create_room()
    for key in ("a/b", "with space", "p%20q", "#hash?query", "ünï", alice.user_id, "+plus"):
        alice.set_state(room_id, "org.example.keys", {"key": key}, key)
        assert alice.state_event(room_id, "org.example.keys", key) == {"key": key}
    keys = {e["state_key"] for e in alice.state(room_id) if e["type"] == "org.example.keys"}
    assert keys == {"a/b", "with space", "p%20q", "#hash?query", "ünï", alice.user_id, "+plus"}
    raw = alice.request("GET", f"/rooms/{q(room_id)}/state/org.example.keys/{q('a/b')}")
    assert raw.json() == {"key": "a/b"}
