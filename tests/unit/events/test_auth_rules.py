"""One test (or more) per authorisation rule, parametrised over the room versions it spans.

Rule numbers follow room version 12 (see dendrite_lite.events.auth_rules).
"""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.events.auth_rules import (
    INFINITE_POWER_LEVEL,
    AuthError,
    auth_types_for_event,
    check_auth,
    check_auth_against_auth_events,
    check_auth_events,
    creators,
    parse_power_level,
    required_power_level,
    select_auth_event_ids,
    should_apply_redaction,
    user_power_level,
)
from dendrite_lite.events.pdu import Pdu
from dendrite_lite.events.room_versions import RoomVersion, RoomVersions
from dendrite_lite.events.signing import ServerSigningKey, encode_base64, sign_json

from .room_builder import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CHARLIE,
    ELLA,
    ZARA,
    Room,
    version_id,
    versions,
)

all_versions = pytest.mark.parametrize("room_version", ALL_VERSIONS, ids=version_id)


def allowed(room: Room, event: Pdu) -> bool:
    try:
        check_auth(room.room_version, event, room.state)
    except AuthError:
        return False
    return True


def rejected(room: Room, event: Pdu, match: str | None = None) -> None:
    with pytest.raises(AuthError, match=match):
        check_auth(room.room_version, event, room.state)


# --- rule 1: m.room.create -------------------------------------------------------------


@all_versions
def test_1_create_event_allowed(room_version: RoomVersion) -> None:
    room = Room(room_version)
    check_auth(room_version, room.create, {})


@all_versions
def test_1_1_create_with_prev_events_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version)
    bad = room.make("m.room.create", ALICE, room.create.content, state_key="", prev_events=["$x"])
    rejected(room, bad, "prev_events")


@pytest.mark.parametrize("room_version", versions(1, 11), ids=version_id)
def test_1_2_create_room_id_domain_must_match_sender(room_version: RoomVersion) -> None:
    room = Room(room_version)
    bad = room.make(
        "m.room.create", ZARA, {"creator": ZARA}, state_key="", prev_events=[], auth_events=[]
    )
    rejected(room, bad, "domain")


def test_1_2_v12_create_must_not_have_room_id() -> None:
    room = Room(RoomVersions.V12)
    bad = room.make(
        "m.room.create", ALICE, {}, state_key="", prev_events=[], auth_events=[], room_id="!x:y"
    )
    rejected(room, bad, "must not have a room_id")


@all_versions
@pytest.mark.parametrize("claimed", ["13", "org.example.unknown", 12, None])
def test_1_3_unknown_room_version_rejected(room_version: RoomVersion, claimed: object) -> None:
    room = Room(room_version, create_content={"room_version": claimed}, create_id="$c2:example.org")
    rejected(room, room.create, "unknown room version")


@all_versions
def test_1_3_absent_room_version_means_1(room_version: RoomVersion) -> None:
    room = Room(room_version)
    content = {k: v for k, v in room.create.content.items() if k != "room_version"}
    event = room.make("m.room.create", ALICE, content, state_key="", prev_events=[], auth_events=[])
    room_id = None if room_version.room_id_is_create_event_id else room.room_id
    check_auth(room_version, Pdu(**{**_fields(event), "room_id": room_id}), {})


@all_versions
def test_1_4_creator_required_until_v11(room_version: RoomVersion) -> None:
    room = Room(room_version)
    room_id = None if room_version.room_id_is_create_event_id else room.room_id
    event = room.make("m.room.create", ALICE, {"room_version": "1"}, state_key="", prev_events=[])
    event = Pdu(**{**_fields(event), "room_id": room_id})
    assert allowed(room, event) == room_version.implicit_room_creator


@pytest.mark.parametrize(
    ("additional", "ok"),
    [
        ([BOB, ZARA], True),
        ([], True),
        ("@bob:example.org", False),
        ([BOB, 5], False),
        (["not-a-user"], False),
        (["@bob:bad_server"], False),
    ],
)
@pytest.mark.parametrize("room_version", [RoomVersions.V11, RoomVersions.V12], ids=version_id)
def test_1_4_v12_additional_creators_validated(
    room_version: RoomVersion, additional: object, ok: bool
) -> None:
    room = Room(room_version, create_content={"additional_creators": additional})
    # only validated in v12; meaningless (and accepted) before
    assert allowed(room, room.create) == (ok or not room_version.privileged_creators)


# --- rule 2 (v12): room ID is the create event's ID ------------------------------------


def test_2_v12_room_id_must_name_the_create_event() -> None:
    room = Room(RoomVersions.V12).bootstrap()
    good = room.make("m.room.message", ALICE, {"body": "hi"})
    check_auth(RoomVersions.V12, good, room.state)
    wrong = room.make("m.room.message", ALICE, {"body": "hi"}, room_id="!other:example.org")
    rejected(room, wrong, "room_id is not the ID")


@all_versions
def test_2_create_event_must_be_this_rooms(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    other = Room(room_version, create_id="$othercreate:example.org")
    event = room.make("m.room.message", ALICE, {})
    with pytest.raises(AuthError, match="room_id is not the ID"):
        check_auth(room_version, event, {**room.state, ("m.room.create", ""): other.create})


@all_versions
def test_no_create_event_in_state_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    event = room.make("m.room.message", ALICE, {})
    with pytest.raises(AuthError, match=r"no m\.room\.create"):
        check_auth(
            room_version, event, {k: v for k, v in room.state.items() if k[0] != "m.room.create"}
        )


# --- rule 3: auth events selection ------------------------------------------------------


@all_versions
def test_3_valid_auth_events(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    event = room.member(BOB, "join")
    auth = [room.events[e] for e in event.auth_events]
    state = check_auth_events(room_version, event, auth)
    assert set(state) <= auth_types_for_event(room_version, event)
    check_auth_against_auth_events(room_version, event, auth, create_event=room.create)


@all_versions
def test_3_1_duplicate_auth_events_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    old_pl = room.state[("m.room.power_levels", "")]
    new_pl = room.power_levels(ALICE, {ALICE: 100, BOB: 10})
    event = room.make(
        "m.room.message",
        ALICE,
        {},
        auth_events=[*room.make("m.room.message", ALICE, {}).auth_events, old_pl.event_id],
    )
    auth = [room.events[e] for e in event.auth_events]
    assert new_pl.event_id in event.auth_events
    with pytest.raises(AuthError, match="duplicate"):
        check_auth_events(room_version, event, auth)


@all_versions
def test_3_2_unexpected_auth_event_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    topic = room.set_state("m.room.topic", ALICE, {"topic": "t"})
    base = room.make("m.room.message", ALICE, {})
    event = room.make("m.room.message", ALICE, {}, auth_events=[*base.auth_events, topic.event_id])
    with pytest.raises(AuthError, match="unexpected"):
        check_auth_events(room_version, event, [room.events[e] for e in event.auth_events])
    message = room.send("m.room.message", ALICE, {})
    event = room.make(
        "m.room.message", ALICE, {}, auth_events=[*base.auth_events, message.event_id]
    )
    with pytest.raises(AuthError, match="unexpected"):
        check_auth_events(room_version, event, [room.events[e] for e in event.auth_events])


def test_3_2_v12_create_event_must_not_be_an_auth_event() -> None:
    room = Room(RoomVersions.V12).bootstrap()
    base = room.make("m.room.message", ALICE, {})
    assert room.create.event_id not in base.auth_events
    event = room.make(
        "m.room.message", ALICE, {}, auth_events=[*base.auth_events, room.create.event_id]
    )
    with pytest.raises(AuthError, match="unexpected"):
        check_auth_events(RoomVersions.V12, event, [room.events[e] for e in event.auth_events])


@all_versions
def test_3_3_rejected_auth_event_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    event = room.make("m.room.message", ALICE, {})
    auth = [room.events[e] for e in event.auth_events]
    pl_id = room.state[("m.room.power_levels", "")].event_id
    with pytest.raises(AuthError, match="was rejected"):
        check_auth_events(room_version, event, auth, rejected={pl_id})
    with pytest.raises(AuthError, match="rejected"):
        check_auth_against_auth_events(
            room_version,
            event,
            auth,
            create_event=room.create,
            rejected={pl_id, room.create.event_id},
        )


@pytest.mark.parametrize("room_version", versions(1, 11), ids=version_id)
def test_3_4_missing_create_auth_event_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    base = room.make("m.room.message", ALICE, {})
    without = [e for e in base.auth_events if e != room.create.event_id]
    event = room.make("m.room.message", ALICE, {}, auth_events=without)
    with pytest.raises(AuthError, match="create event"):
        check_auth_events(room_version, event, [room.events[e] for e in without])


def test_3_v12_create_event_must_be_supplied_and_accepted() -> None:
    room = Room(RoomVersions.V12).bootstrap()
    event = room.make("m.room.message", ALICE, {})
    auth = [room.events[e] for e in event.auth_events]
    with pytest.raises(AuthError, match="create event is unknown"):
        check_auth_against_auth_events(RoomVersions.V12, event, auth)
    check_auth_against_auth_events(RoomVersions.V12, event, auth, create_event=room.create)


@all_versions
def test_3_5_auth_event_from_other_room_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    other = Room(room_version, create_id="$othercreate:example.org").bootstrap()
    base = room.make("m.room.message", ALICE, {})
    foreign_pl = other.state[("m.room.power_levels", "")]
    ids = [e for e in base.auth_events if room.events[e].type != "m.room.power_levels"]
    event = room.make("m.room.message", ALICE, {}, auth_events=[*ids, foreign_pl.event_id])
    auth = [room.events[e] for e in ids] + [foreign_pl]
    with pytest.raises(AuthError, match="another room"):
        check_auth_events(room_version, event, auth)


def test_3_missing_auth_events_reported() -> None:
    room = Room(RoomVersions.V10).bootstrap()
    event = room.make("m.room.message", ALICE, {})
    with pytest.raises(AuthError, match="not supplied"):
        check_auth_events(RoomVersions.V10, event, [])


@all_versions
def test_3_create_event_against_auth_events(room_version: RoomVersion) -> None:
    room = Room(room_version)
    check_auth_against_auth_events(room_version, room.create, [])


# --- rule 4: m.federate ------------------------------------------------------------------


@all_versions
def test_4_unfederated_room_rejects_other_servers(room_version: RoomVersion) -> None:
    room = Room(room_version, create_content={"m.federate": False}).bootstrap()
    rejected(room, room.member(ZARA, "join"), "federate")
    room.join(BOB)  # same server as the creator


@all_versions
def test_4_m_federate_true_or_absent_allows(room_version: RoomVersion) -> None:
    room = Room(room_version, create_content={"m.federate": True}).bootstrap()
    room.join(ZARA)


# --- v1-5 rule 4: m.room.aliases ----------------------------------------------------------


@all_versions
def test_aliases_special_case(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    # Zara is not even in the room, has no power: only the server name matters in v1-5.
    own = room.make(
        "m.room.aliases", ZARA, {"aliases": ["#a:other.example"]}, state_key="other.example"
    )
    assert allowed(room, own) == room_version.special_case_aliases_auth
    foreign = room.make("m.room.aliases", ZARA, {"aliases": []}, state_key="example.org")
    assert not allowed(room, foreign)
    no_key = room.make("m.room.aliases", ZARA, {"aliases": []})
    assert not allowed(room, no_key)
    # From v6 it is ordinary state: fine for a joined user with the state level.
    alice_aliases = room.make("m.room.aliases", ALICE, {"aliases": []}, state_key="example.org")
    assert allowed(room, alice_aliases)


# --- rule 5: m.room.member -----------------------------------------------------------------


@all_versions
def test_5_1_member_needs_state_key_and_membership(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    rejected(room, room.make("m.room.member", BOB, {"membership": "join"}), "state_key")
    rejected(room, room.make("m.room.member", BOB, {}, state_key=BOB), "membership")


@all_versions
def test_5_3_1_creator_first_join(room_version: RoomVersion) -> None:
    room = Room(room_version)
    join = room.member(ALICE, "join")
    assert join.prev_events == (room.create.event_id,)
    check_auth(room_version, join, room.state)
    # Only when the create event is the single prev event.
    later = room.member(ALICE, "join", prev_events=[room.create.event_id, "$x:example.org"])
    rejected(room, later)


@pytest.mark.parametrize("room_version", versions(1, 10), ids=version_id)
def test_5_3_1_creator_is_content_creator_before_v11(room_version: RoomVersion) -> None:
    # The create event's sender is Alice but content.creator names Bob.
    room = Room(room_version, create_content={"creator": BOB})
    check_auth(room_version, room.member(BOB, "join"), room.state)
    rejected(room, room.member(ALICE, "join"))


@pytest.mark.parametrize("room_version", versions(11), ids=version_id)
def test_5_3_1_creator_is_sender_from_v11(room_version: RoomVersion) -> None:
    room = Room(room_version, create_content={"creator": BOB, "additional_creators": [BOB]})
    check_auth(room_version, room.member(ALICE, "join"), room.state)
    rejected(room, room.member(BOB, "join"))  # additional creators do not get the shortcut


@all_versions
def test_5_3_2_cannot_join_for_someone_else(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    rejected(room, room.member(BOB, "join", sender=ALICE), "behalf")


@all_versions
def test_5_3_3_banned_cannot_join(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    room.join(BOB)
    room.add(room.member(BOB, "ban", sender=ALICE))
    rejected(room, room.member(BOB, "join"), "banned")


@all_versions
@pytest.mark.parametrize("rule", ["invite", "knock"])
def test_5_3_4_invite_and_knock_rooms(room_version: RoomVersion, rule: str) -> None:
    room = Room(room_version).bootstrap(join_rule=rule)
    rejected(room, room.member(BOB, "join"))
    room.add(room.member(BOB, "invite", sender=ALICE))
    # knock is only a join rule from v7; before that it is an unknown rule -> reject
    assert allowed(room, room.member(BOB, "join")) == (
        rule == "invite" or room_version.knock_join_rule
    )


@all_versions
def test_5_3_4_joined_user_can_rejoin_invite_room(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(join_rule="invite")
    room.join(ALICE, content={"displayname": "Al"})


@all_versions
def test_5_3_no_join_rules_event_means_invite(room_version: RoomVersion) -> None:
    room = Room(room_version)
    room.join(ALICE)
    rejected(room, room.member(BOB, "join"))


@all_versions
@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
def test_5_3_5_restricted_joins(room_version: RoomVersion, rule: str) -> None:
    supported = (
        room_version.restricted_join_rule
        if rule == "restricted"
        else room_version.knock_restricted_join_rule
    )
    room = Room(room_version).bootstrap(join_rule=rule, users={CHARLIE: 0})
    authorised = {"join_authorised_via_users_server": ALICE}
    assert allowed(room, room.member(BOB, "join", content=authorised)) == supported
    if not supported:
        return
    rejected(room, room.member(BOB, "join"), "join_authorised_via_users_server")
    rejected(
        room,
        room.member(BOB, "join", content={"join_authorised_via_users_server": ZARA}),
        "not signed",
    )
    zara_signed = room.member(
        BOB,
        "join",
        content={"join_authorised_via_users_server": ZARA},
        signers=["example.org", "other.example"],
    )
    rejected(room, zara_signed, "not joined")
    # authoriser joined but without invite power
    room.power_levels(ALICE, {ALICE: 100}, invite=50)
    room.add(room.member(ZARA, "join", sender=ZARA, content={}))
    rejected(room, zara_signed, "cannot invite")
    # the authoriser's server must have signed (rule 5.2)
    unsigned = room.member(BOB, "join", content=authorised, signers=["other.example"])
    rejected(room, unsigned, "not signed")
    # already invited users need no authoriser
    room.add(room.member(BOB, "invite", sender=ALICE))
    assert allowed(room, room.member(BOB, "join"))


@pytest.mark.parametrize("room_version", versions(8), ids=version_id)
def test_5_2_authoriser_signature_checked_for_any_membership(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    room.join(BOB)
    leave = room.member(BOB, "leave", content={"join_authorised_via_users_server": ZARA})
    rejected(room, leave, "not signed")
    junk = room.member(BOB, "leave", content={"join_authorised_via_users_server": "nodomain"})
    rejected(room, junk, "not signed")

    def checker(event: Pdu, server: str) -> bool:
        return server == "other.example"

    check_auth(room_version, leave, room.state, is_signed_by=checker)


@all_versions
def test_5_3_6_public_and_unknown_join_rules(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(join_rule="public")
    room.join(BOB)
    private = Room(room_version, create_id="$c-private:example.org").bootstrap(join_rule="private")
    rejected(private, private.member(BOB, "join"), "does not allow")


@all_versions
def test_5_4_invites(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(join_rule="invite")
    rejected(room, room.member(CHARLIE, "invite", sender=BOB), "not joined")
    room.add(room.member(BOB, "invite", sender=ALICE))
    room.join(BOB)
    room.send("m.room.member", BOB, {"membership": "invite"}, state_key=CHARLIE)  # invite level 0
    rejected(room, room.member(BOB, "invite", sender=ALICE), "already joined")
    room.power_levels(ALICE, {ALICE: 100}, invite=10)
    rejected(room, room.member(ELLA, "invite", sender=BOB), "invite level")
    room.add(room.member(ZARA, "ban", sender=ALICE))
    rejected(room, room.member(ZARA, "invite", sender=ALICE), "banned")


def _third_party_room(room_version: RoomVersion) -> tuple[Room, ServerSigningKey]:
    room = Room(room_version).bootstrap(join_rule="invite")
    identity_key = ServerSigningKey.generate("0")
    room.set_state(
        "m.room.third_party_invite",
        ALICE,
        {
            "display_name": "b...@example.com",
            "key_validity_url": "https://id.example/isvalid",
            "public_key": encode_base64(bytes(identity_key.verify_key), urlsafe=True),
        },
        state_key="tok",
    )
    return room, identity_key


def _signed(key: ServerSigningKey, mxid: str = BOB, token: str = "tok") -> dict[str, Any]:
    return sign_json({"mxid": mxid, "token": token}, "id.example", key.key_id, key.signing_key)


@all_versions
def test_5_4_1_third_party_invite(room_version: RoomVersion) -> None:
    room, key = _third_party_room(room_version)

    def invite(signed: object, sender: str = ALICE, target: str = BOB) -> Pdu:
        content = {"third_party_invite": {"display_name": "b", "signed": signed}}
        return room.member(target, "invite", sender=sender, content=content)

    check_auth(room_version, invite(_signed(key)), room.state)
    rejected(room, invite(_signed(key, mxid=CHARLIE)), "mxid")
    rejected(room, invite(_signed(key, token="other")), "no m.room.third_party_invite")
    rejected(room, invite({"mxid": BOB}), "mxid or token")
    rejected(room, invite("junk"), "no signed")
    rejected(room, invite(_signed(ServerSigningKey.generate())), "signature")
    rejected(room, invite(_signed(key), sender=BOB), "did not send")
    bad_sig = {**_signed(key), "signatures": "junk"}
    rejected(room, invite(bad_sig), "signature")
    room.add(room.member(BOB, "ban", sender=ALICE))
    rejected(room, invite(_signed(key)), "banned")


@all_versions
def test_5_4_1_third_party_invite_public_keys_list(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(join_rule="invite")
    key = ServerSigningKey.generate("k")
    room.set_state(
        "m.room.third_party_invite",
        ALICE,
        {
            "public_key": "not base64!",
            "public_keys": [{"public_key": "AAAA"}, "junk", {"public_key": key.public_key_base64}],
        },
        state_key="tok",
    )
    signed = _signed(key)
    signed["signatures"]["id.example"]["curve25519:x"] = "ignored"
    signed["signatures"]["junk.example"] = "junk"
    content = {"third_party_invite": {"signed": signed}}
    check_auth(room_version, room.member(BOB, "invite", sender=ALICE, content=content), room.state)


@all_versions
def test_5_5_leave(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(join_rule="invite", users={BOB: 50})
    rejected(room, room.member(CHARLIE, "leave"), "cannot leave")  # no membership
    room.add(room.member(CHARLIE, "invite", sender=ALICE))
    check_auth(room_version, room.member(CHARLIE, "leave"), room.state)  # reject invite
    room.add(room.member(BOB, "invite", sender=ALICE))
    room.join(BOB)
    room.join(CHARLIE)
    check_auth(room_version, room.member(CHARLIE, "leave"), room.state)  # leave
    # kicks: Bob (50) may kick Charlie (0) but not Alice (100)
    check_auth(room_version, room.member(CHARLIE, "leave", sender=BOB), room.state)
    rejected(room, room.member(ALICE, "leave", sender=BOB), "cannot kick")
    rejected(room, room.member(BOB, "leave", sender=CHARLIE), "cannot kick")
    # unban needs the ban level
    room.add(room.member(ZARA, "ban", sender=ALICE))
    check_auth(room_version, room.member(ZARA, "leave", sender=BOB), room.state)
    room.power_levels(ALICE, {ALICE: 100, BOB: 50}, ban=60)
    rejected(room, room.member(ZARA, "leave", sender=BOB), "ban level")
    rejected(room, room.member(ZARA, "leave"), "cannot leave")  # banned user leaving
    # a non-member cannot kick
    rejected(room, room.member(CHARLIE, "leave", sender=ELLA), "not joined")


@pytest.mark.parametrize("room_version", versions(7), ids=version_id)
def test_5_5_1_knocking_user_can_withdraw(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(join_rule="knock")
    room.send("m.room.member", BOB, {"membership": "knock"}, state_key=BOB)
    check_auth(room_version, room.member(BOB, "leave"), room.state)


@all_versions
def test_5_6_ban(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(users={BOB: 50, CHARLIE: 50})
    for user in (BOB, CHARLIE):
        room.join(user)
    check_auth(room_version, room.member(ZARA, "ban", sender=BOB), room.state)
    rejected(room, room.member(CHARLIE, "ban", sender=BOB), "cannot ban")  # equal level
    rejected(room, room.member(ZARA, "ban", sender=ELLA), "not joined")
    room.power_levels(ALICE, {ALICE: 100, BOB: 50, CHARLIE: 50}, ban=75)
    rejected(room, room.member(ZARA, "ban", sender=BOB), "cannot ban")


@all_versions
@pytest.mark.parametrize("rule", ["knock", "knock_restricted", "public"])
def test_5_7_knock(room_version: RoomVersion, rule: str) -> None:
    room = Room(room_version).bootstrap(join_rule=rule)
    knock = room.member(BOB, "knock")
    supported = room_version.knock_join_rule and (
        rule == "knock" or (rule == "knock_restricted" and room_version.knock_restricted_join_rule)
    )
    assert allowed(room, knock) == supported
    if not supported:
        return
    rejected(room, room.member(BOB, "knock", sender=CHARLIE), "behalf")
    room.add(room.member(BOB, "invite", sender=ALICE))
    rejected(room, room.member(BOB, "knock"), "cannot knock")


@pytest.mark.parametrize("room_version", versions(1, 6), ids=version_id)
def test_5_knock_unknown_before_v7(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(join_rule="knock")
    rejected(room, room.member(BOB, "knock"), "unknown membership")


@all_versions
@pytest.mark.parametrize("membership", ["kick", "JOIN", 5, None])
def test_5_8_unknown_membership(room_version: RoomVersion, membership: object) -> None:
    room = Room(room_version).bootstrap()
    event = room.make("m.room.member", ALICE, {"membership": membership}, state_key=ALICE)
    rejected(room, event, "unknown membership")


# --- rules 6-9 -------------------------------------------------------------------------------


@all_versions
def test_6_sender_must_be_joined(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    rejected(room, room.make("m.room.message", BOB, {"body": "hi"}), "not joined")
    room.join(BOB)
    room.send("m.room.message", BOB, {"body": "hi"})
    room.add(room.member(BOB, "leave"))
    rejected(room, room.make("m.room.message", BOB, {"body": "hi"}), "not joined")


@all_versions
def test_7_third_party_invite_event_needs_invite_level(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    room.join(BOB)
    event = room.make("m.room.third_party_invite", BOB, {"public_key": "x"}, state_key="t")
    check_auth(room_version, event, room.state)  # invite level 0 beats state_default 50
    room.power_levels(ALICE, {ALICE: 100}, invite=1)
    rejected(room, event, "invite level")


@all_versions
def test_8_required_power_level(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(users={BOB: 10})
    room.join(BOB)
    rejected(room, room.make("m.room.topic", BOB, {"topic": "t"}, state_key=""), "too low")
    room.send("m.room.message", BOB, {})
    room.power_levels(ALICE, {ALICE: 100, BOB: 10}, events={"m.room.topic": 10, "m.reaction": 11})
    room.set_state("m.room.topic", BOB, {"topic": "t"})
    rejected(room, room.make("m.reaction", BOB, {}), "too low")
    room.power_levels(ALICE, {ALICE: 100, BOB: 10}, events_default=20, state_default=5)
    rejected(room, room.make("m.room.message", BOB, {}), "too low")
    room.set_state("m.room.name", BOB, {"name": "n"})


@all_versions
def test_8_defaults_without_power_levels_event(room_version: RoomVersion) -> None:
    room = Room(room_version)
    room.join(ALICE)
    room.set_state("m.room.join_rules", ALICE, {"join_rule": "public"})  # creator: 100
    room.join(BOB)
    room.send("m.room.message", BOB, {})  # events_default 0
    rejected(room, room.make("m.room.name", BOB, {"name": "x"}, state_key=""), "too low")
    expected = INFINITE_POWER_LEVEL if room_version.privileged_creators else 100
    assert user_power_level(room.state, ALICE, room_version) == expected
    assert user_power_level(room.state, BOB, room_version) == 0


@all_versions
def test_9_state_key_user_ids_belong_to_their_user(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(users={BOB: 50})
    room.join(BOB)
    room.set_state("org.example.status", BOB, {}, state_key=BOB)
    rejected(room, room.make("org.example.status", BOB, {}, state_key=ALICE), "must be the sender")
    room.set_state("org.example.status", BOB, {}, state_key="not-a-user")


# --- rule 10: m.room.power_levels --------------------------------------------------------


def _pl(room: Room, sender: str, content: dict[str, Any]) -> Pdu:
    return room.make("m.room.power_levels", sender, content, state_key="")


@all_versions
def test_10_first_power_levels_event_is_unconstrained(room_version: RoomVersion) -> None:
    room = Room(room_version)
    room.join(ALICE)
    content = {"users": {BOB: 100}, "ban": 1000}
    if not room_version.privileged_creators:
        content["users"][ALICE] = 100
    check_auth(room_version, _pl(room, ALICE, content), room.state)


@all_versions
@pytest.mark.parametrize(
    ("users", "valid_from", "valid_until"),
    [
        ({BOB: 50}, 1, 12),
        ({BOB: "50"}, 1, 9),
        ({BOB: " +050 "}, 1, 9),
        ({BOB: 50.7}, 1, 5),
        ({BOB: "1_000"}, 99, 0),
        ({BOB: "\u0665\u0660"}, 99, 0),  # Arabic-Indic digits
        ({BOB: True}, 99, 0),
        ({BOB: None}, 99, 0),
        ({BOB: "5.0"}, 99, 0),
        ({"not-a-user": 50}, 99, 0),
        ({"@bob:bad server": 50}, 99, 0),
    ],
)
def test_10_users_values(
    room_version: RoomVersion, users: dict[str, Any], valid_from: int, valid_until: int
) -> None:
    room = Room(room_version).bootstrap()
    own = {} if room_version.privileged_creators else {ALICE: 100}
    event = _pl(room, ALICE, {"users": {**own, **users}})
    assert allowed(room, event) == (valid_from <= int(room_version.identifier) <= valid_until)


@all_versions
def test_10_users_must_be_an_object(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    rejected(room, _pl(room, ALICE, {"users": [ALICE]}), "users")


@all_versions
@pytest.mark.parametrize(
    "content",
    [
        {"ban": "50"},
        {"kick": " 50"},
        {"events": {"m.room.name": "50"}},
        {"notifications": {"room": "1"}},
    ],
)
def test_10_1_and_10_2_stringy_values_rejected_from_v10(
    room_version: RoomVersion, content: dict[str, Any]
) -> None:
    room = Room(room_version).bootstrap()
    own = {} if room_version.privileged_creators else {ALICE: 100}
    event = _pl(room, ALICE, {"users": own, **content})
    assert allowed(room, event) == (not room_version.enforce_int_power_levels)


@pytest.mark.parametrize("room_version", versions(10), ids=version_id)
@pytest.mark.parametrize(
    "content", [{"events": []}, {"notifications": "x"}, {"invite": 1.0}, {"redact": True}]
)
def test_10_1_and_10_2_shapes_from_v10(room_version: RoomVersion, content: dict[str, Any]) -> None:
    room = Room(room_version).bootstrap()
    rejected(room, _pl(room, ALICE, {"users": {}, **content}), "must be an")


def test_10_4_v12_creators_cannot_be_in_users() -> None:
    room = Room(RoomVersions.V12, create_content={"additional_creators": [BOB]}).bootstrap()
    rejected(room, _pl(room, ALICE, {"users": {ALICE: 100}}), "creators")
    rejected(room, _pl(room, ALICE, {"users": {BOB: 100}}), "creators")
    check_auth(RoomVersions.V12, _pl(room, ALICE, {"users": {CHARLIE: 100}}), room.state)


@all_versions
def test_10_named_levels_changes(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(users={BOB: 50})
    room.join(BOB)
    room.power_levels(ALICE, {ALICE: 100, BOB: 50}, events={"m.room.power_levels": 50}, kick=40)
    users = {ALICE: 100, BOB: 50} if not room_version.privileged_creators else {BOB: 50}
    base = {"users": users, "events": {"m.room.power_levels": 50}, "kick": 40}
    # Bob (50) may lower kick from 40 to 30 and set ban to 50, but not to 51
    check_auth(room_version, _pl(room, BOB, {**base, "kick": 30, "ban": 50}), room.state)
    rejected(room, _pl(room, BOB, {**base, "ban": 51}), "ban")
    # removing a value above Bob's level (redact default is 50, so add one at 60 first)
    room.power_levels(
        ALICE, {ALICE: 100, BOB: 50}, events={"m.room.power_levels": 50}, kick=40, redact=60
    )
    rejected(room, _pl(room, BOB, base), "redact")
    # the same value written differently (v1-9: string) is not a change
    if room_version.stringy_power_levels:
        check_auth(room_version, _pl(room, BOB, {**base, "kick": "40", "redact": 60}), room.state)


@all_versions
def test_10_events_and_notifications_changes(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(users={BOB: 50})
    room.join(BOB)
    events = {"m.room.power_levels": 50, "m.room.tombstone": 100}
    room.power_levels(ALICE, {ALICE: 100, BOB: 50}, events=events, notifications={"room": 80})
    users = {BOB: 50} if room_version.privileged_creators else {ALICE: 100, BOB: 50}
    base = {"users": users, "events": events, "notifications": {"room": 80}}
    check_auth(
        room_version, _pl(room, BOB, {**base, "events": {**events, "m.room.name": 50}}), room.state
    )
    rejected(room, _pl(room, BOB, {**base, "events": {**events, "m.room.name": 51}}), "events")
    rejected(
        room,
        _pl(room, BOB, {**base, "events": {"m.room.power_levels": 50}}),
        "events.m.room.tombstone",
    )
    # notifications only count from v6
    lowered = _pl(room, BOB, {**base, "notifications": {"room": 0}})
    assert allowed(room, lowered) == (not room_version.limit_notifications_power_levels)
    raised = _pl(room, BOB, {**base, "notifications": {"room": 80, "x": 99}})
    assert allowed(room, raised) == (not room_version.limit_notifications_power_levels)


@all_versions
def test_10_users_changes(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(users={BOB: 50, CHARLIE: 50, ELLA: 10})
    room.join(BOB)
    room.power_levels(
        ALICE, {ALICE: 100, BOB: 50, CHARLIE: 50, ELLA: 10}, events={"m.room.power_levels": 50}
    )
    own = {} if room_version.privileged_creators else {ALICE: 100}
    base = {"events": {"m.room.power_levels": 50}}
    users = {**own, BOB: 50, CHARLIE: 50, ELLA: 10}

    def change(**changes: Any) -> Pdu:
        new_users = {**users, **changes}
        return _pl(
            room, BOB, {**base, "users": {k: v for k, v in new_users.items() if v is not None}}
        )

    check_auth(room_version, change(**{ELLA: 50}), room.state)  # promote up to own level
    check_auth(room_version, change(**{ELLA: None}), room.state)  # remove a lower user
    check_auth(room_version, change(**{BOB: 0}), room.state)  # demote oneself
    rejected(room, change(**{ELLA: 51}), "users")  # above own level
    rejected(room, change(**{CHARLIE: 0}), "users")  # demote an equal
    rejected(room, change(**{CHARLIE: None}), "users")  # remove an equal
    rejected(room, change(**{"@new:example.org": 60}), "users")
    if not room_version.privileged_creators:
        rejected(room, change(**{ALICE: 0}), "users")  # demote a higher user


def test_10_v12_creators_have_infinite_power() -> None:
    room = Room(RoomVersions.V12, create_content={"additional_creators": [BOB]}).bootstrap(
        users={CHARLIE: 2**53 - 1}
    )
    room.join(BOB)
    room.join(CHARLIE)
    for creator in (ALICE, BOB):
        assert user_power_level(room.state, creator, RoomVersions.V12) == INFINITE_POWER_LEVEL
    # An additional creator demotes a maximal admin...
    check_auth(RoomVersions.V12, _pl(room, BOB, {"users": {CHARLIE: 0}}), room.state)
    # ...who cannot touch creators, who cannot kick each other either.
    rejected(room, room.member(BOB, "ban", sender=CHARLIE), "cannot ban")
    rejected(room, room.member(BOB, "leave", sender=ALICE), "cannot kick")
    check_auth(RoomVersions.V12, room.member(CHARLIE, "ban", sender=BOB), room.state)
    assert creators(room.create, RoomVersions.V12) == {ALICE, BOB}
    assert creators(room.create, RoomVersions.V11) == {ALICE}


# --- rule 11 (v1-2): redactions -------------------------------------------------------------


@all_versions
def test_11_redactions(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    room.join(ZARA)
    alice_msg = room.send("m.room.message", ALICE, {"body": "x"})
    # Zara (other server, level 0 < redact 50) redacting Alice's message:
    event = room.make("m.room.redaction", ZARA, {}, redacts=alice_msg.event_id)
    # v1-2 rule 11 rejects; from v3 it is authorised (and checked when applied instead).
    assert allowed(room, event) == (not room_version.special_case_redaction_auth)
    zara_msg = room.send("m.room.message", ZARA, {"body": "y"})
    check_auth(
        room_version, room.make("m.room.redaction", ZARA, {}, redacts=zara_msg.event_id), room.state
    )
    check_auth(
        room_version,
        room.make("m.room.redaction", ALICE, {}, redacts=zara_msg.event_id),
        room.state,
    )
    if room_version.special_case_redaction_auth:
        rejected(room, room.make("m.room.redaction", ZARA, {}), "redact")  # no redacts at all


@all_versions
def test_should_apply_redaction(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    room.join(BOB)
    room.join(ZARA)
    alice_msg = room.send("m.room.message", ALICE, {})
    zara_msg = room.send("m.room.message", ZARA, {})

    def redaction(sender: str, target: Pdu) -> Pdu:
        return room.make("m.room.redaction", sender, {}, redacts=target.event_id)

    state = room.state
    assert should_apply_redaction(room_version, redaction(ALICE, zara_msg), zara_msg, state)
    assert should_apply_redaction(room_version, redaction(ZARA, zara_msg), zara_msg, state)
    assert should_apply_redaction(room_version, redaction(BOB, alice_msg), alice_msg, state)
    assert not should_apply_redaction(room_version, redaction(ZARA, alice_msg), alice_msg, state)
    other_room = Room(room_version, create_id="$elsewhere:example.org").bootstrap()
    foreign = other_room.send("m.room.message", ALICE, {})
    assert not should_apply_redaction(room_version, redaction(ALICE, foreign), foreign, state)


# --- auth events selection and helpers ---------------------------------------------------


@all_versions
def test_auth_types_for_event(room_version: RoomVersion) -> None:
    room = Room(room_version)
    create = set() if room_version.room_id_is_create_event_id else {("m.room.create", "")}
    base = create | {("m.room.power_levels", ""), ("m.room.member", BOB)}
    assert auth_types_for_event(room_version, room.create) == set()
    assert auth_types_for_event(room_version, room.make("m.room.message", BOB, {})) == base
    join = room.member(BOB, "join", content={"join_authorised_via_users_server": CHARLIE})
    expected = base | {("m.room.join_rules", "")}
    if room_version.restricted_join_rule:
        expected.add(("m.room.member", CHARLIE))
    assert auth_types_for_event(room_version, join) == expected
    invite = room.member(
        CHARLIE, "invite", sender=BOB, content={"third_party_invite": {"signed": {"token": "t"}}}
    )
    assert auth_types_for_event(room_version, invite) == base | {
        ("m.room.member", CHARLIE),
        ("m.room.join_rules", ""),
        ("m.room.third_party_invite", "t"),
    }
    bad_invite = room.member(CHARLIE, "invite", sender=BOB, content={"third_party_invite": "x"})
    assert ("m.room.third_party_invite", "t") not in auth_types_for_event(room_version, bad_invite)
    leave = room.member(CHARLIE, "leave", sender=BOB)
    assert auth_types_for_event(room_version, leave) == base | {("m.room.member", CHARLIE)}


@pytest.mark.parametrize(
    ("value", "version", "expected"),
    [
        (50, RoomVersions.V12, 50),
        ("50", RoomVersions.V9, 50),
        ("  -007 ", RoomVersions.V1, -7),
        ("+100", RoomVersions.V5, 100),
        (50.99, RoomVersions.V5, 50),
        (-50.99, RoomVersions.V1, -50),
        (5.114698e4, RoomVersions.V3, 51146),
    ],
)
def test_parse_power_level(value: object, version: RoomVersion, expected: int) -> None:
    assert parse_power_level(value, version, "x") == expected


@pytest.mark.parametrize(
    ("value", "version"),
    [
        ("50", RoomVersions.V10),
        (50.5, RoomVersions.V6),
        (float("inf"), RoomVersions.V1),
        (float("nan"), RoomVersions.V1),
        ("1e3", RoomVersions.V1),
        ("", RoomVersions.V1),
        ("+-1", RoomVersions.V1),
        (False, RoomVersions.V1),
        ([50], RoomVersions.V1),
    ],
)
def test_parse_power_level_rejects(value: object, version: RoomVersion) -> None:
    with pytest.raises(AuthError, match="invalid power level"):
        parse_power_level(value, version, "x")


@all_versions
def test_unparseable_values_only_fail_events_that_consult_them(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap()
    room.join(BOB)
    junk_pl = room.make(
        "m.room.power_levels",
        ALICE,
        {"users": {}, "events": {"m.room.topic": "lots"}, "kick": "some"},
        state_key="",
    )
    room.add(junk_pl)  # e.g. accepted long ago as a first power levels event
    room.send("m.room.message", BOB, {})  # never looks at kick or events.m.room.topic
    with pytest.raises(AuthError, match="invalid power level"):
        required_power_level(
            room.state, room.make("m.room.topic", BOB, {}, state_key=""), room_version
        )
    rejected(room, room.member(BOB, "leave", sender=ALICE), "invalid power level")
    room.add(room.make("m.room.power_levels", ALICE, {"users": "junk"}, state_key=""))
    rejected(room, room.make("m.room.message", BOB, {}), "not an object")


def _fields(pdu: Pdu) -> dict[str, Any]:
    return {f: getattr(pdu, f) for f in pdu.__struct_fields__}


@all_versions
def test_select_auth_event_ids_for_new_events(room_version: RoomVersion) -> None:
    room = Room(room_version).bootstrap(join_rule="invite")
    state = {k: v.event_id for k, v in room.state.items()}
    invite = select_auth_event_ids(
        room_version,
        state,
        event_type="m.room.member",
        sender=ALICE,
        state_key=BOB,
        content={"membership": "invite"},
    )
    expected = room.member(BOB, "invite", sender=ALICE).auth_events
    assert sorted(invite) == sorted(expected)
    assert (room.create.event_id in invite) != room_version.room_id_is_create_event_id
    assert ("m.room.join_rules", "") in {
        (room.events[e].type, room.events[e].state_key) for e in invite
    }
    create = select_auth_event_ids(
        room_version, state, event_type="m.room.create", sender=ALICE, state_key="", content={}
    )
    assert create == []
