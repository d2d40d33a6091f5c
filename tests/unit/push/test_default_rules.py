"""The server-default rules: the list of the current spec, in order, and what each does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dendrite_lite.push.evaluator import EventView, Outcome, compile_ruleset, evaluate
from dendrite_lite.push.rules import Rule
from dendrite_lite.push.ruleset import UserRules, assemble, ruleset_json
from tests.unit.push.conftest import ALICE, BOB, view

SPEC = json.loads((Path(__file__).parent / "spec_default_rules.json").read_text())
SPEC_USER = "[the user's Matrix ID]"


def test_defaults_are_the_spec_rules_in_order() -> None:
    """Compared with the JSON definitions of the spec's "Predefined Rules" section."""
    shown = ruleset_json(assemble(UserRules()), SPEC_USER)
    for kind in ("override", "content", "room", "sender", "underride"):
        assert shown[kind] == SPEC[kind], kind
    assert [r["rule_id"] for r in shown["override"]] == [
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.is_room_mention",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    assert [r["rule_id"] for r in shown["underride"]] == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]


def test_the_users_id_is_shown_in_rules_naming_it() -> None:
    shown = ruleset_json(assemble(UserRules()), ALICE)
    invite = next(r for r in shown["override"] if r["rule_id"] == ".m.rule.invite_for_me")
    assert invite["conditions"][2] == {"kind": "event_match", "key": "state_key", "pattern": ALICE}
    mention = next(r for r in shown["override"] if r["rule_id"] == ".m.rule.is_user_mention")
    assert mention["conditions"][0]["value"] == ALICE


def outcome(event: EventView, user: str = ALICE, rules: UserRules | None = None) -> Outcome | None:
    ruleset = compile_ruleset(assemble(rules or UserRules()))
    return evaluate(ruleset, event, user, "Alice")


def notified(event: EventView, **kwargs: Any) -> tuple[bool, bool, dict[str, Any]]:
    """(notify, highlight, tweaks); (False, False, {}) when no rule matched."""
    result = outcome(event, **kwargs)
    if result is None:
        return (False, False, {})
    return (result.notify, result.highlight, result.tweaks)


def test_master_is_off_by_default_and_silences_everything_when_on() -> None:
    mention = view({"body": "hi", "m.mentions": {"user_ids": [ALICE]}})
    assert notified(mention)[0]
    master_on = UserRules(default_changes={("override", ".m.rule.master"): (True, None)})
    assert notified(mention, rules=master_on) == (False, False, {})
    assert outcome(mention, rules=master_on) is not None  # matched, with no actions


def test_suppress_notices() -> None:
    assert notified(view({"msgtype": "m.notice", "body": "bot"})) == (False, False, {})
    # Even a mention in a notice stays silent: suppress_notices comes first.
    notice = view({"msgtype": "m.notice", "body": "x", "m.mentions": {"user_ids": [ALICE]}})
    assert not notified(notice)[0]


def test_invite_for_me() -> None:
    invite = view({"membership": "invite"}, type="m.room.member", state_key=ALICE)
    assert notified(invite) == (True, False, {"sound": "default"})
    other = view({"membership": "invite"}, type="m.room.member", state_key=BOB)
    assert not notified(other)[0]  # member_event: someone else's invite


def test_member_event() -> None:
    join = view({"membership": "join"}, type="m.room.member", state_key=BOB)
    result = outcome(join)
    assert result is not None and not result.notify


def test_is_user_mention() -> None:
    mention = view({"body": "hey", "m.mentions": {"user_ids": [ALICE]}})
    assert notified(mention) == (True, True, {"sound": "default", "highlight": True})
    other = view({"body": "hey", "m.mentions": {"user_ids": [BOB]}})
    assert notified(other) == (True, False, {})  # .m.rule.message


def test_is_room_mention_needs_permission() -> None:
    content = {"body": "@room look", "m.mentions": {"room": True}}
    assert notified(view(content, sender_level=50)) == (True, True, {"highlight": True})
    assert notified(view(content, sender_level=0)) == (True, False, {})  # plain message
    permitted = view(content, sender_level=10, notifications={"room": 10})
    assert notified(permitted)[1]


def test_legacy_body_mentions_do_not_highlight() -> None:
    """v1.17 removed the body-based mention rules (MSC4210)."""
    assert notified(view({"body": "Alice: @room alice"})) == (True, False, {})


def test_tombstone() -> None:
    tombstone = view({"body": "moved"}, type="m.room.tombstone", state_key="")
    assert notified(tombstone) == (True, True, {"highlight": True})
    not_state = view({"body": "moved"}, type="m.room.tombstone")
    assert not notified(not_state)[0]


def test_reaction_and_server_acl_are_silent() -> None:
    reaction = view({"m.relates_to": {"rel_type": "m.annotation"}}, type="m.reaction")
    assert outcome(reaction) is not None and not notified(reaction)[0]
    acl = view({"allow": ["*"]}, type="m.room.server_acl", state_key="")
    assert outcome(acl) is not None and not notified(acl)[0]


def test_suppress_edits() -> None:
    edit = {
        "body": "* fixed",
        "m.new_content": {"body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"},
    }
    assert notified(view(edit)) == (False, False, {})
    assert notified(view(edit, members=2)) == (False, False, {})
    # A user newly mentioned by the edit (the top-level m.mentions holds only those) is
    # notified: .m.rule.is_user_mention comes before .m.rule.suppress_edits.
    mentioning = view({**edit, "m.mentions": {"user_ids": [ALICE]}})
    assert notified(mentioning)[1]


def test_call() -> None:
    call = view({"call_id": "1"}, type="m.call.invite")
    assert notified(call) == (True, False, {"sound": "ring"})


def test_one_to_one_rooms() -> None:
    assert notified(view(members=2)) == (True, False, {"sound": "default"})
    encrypted = view({"algorithm": "m.megolm.v1.aes-sha2"}, type="m.room.encrypted", members=2)
    assert notified(encrypted) == (True, False, {"sound": "default"})


def test_group_rooms() -> None:
    assert notified(view(members=3)) == (True, False, {})
    encrypted = view({"algorithm": "m.megolm.v1.aes-sha2"}, type="m.room.encrypted", members=3)
    assert notified(encrypted) == (True, False, {})


def test_other_events_match_nothing() -> None:
    assert outcome(view({"name": "x"}, type="m.room.name", state_key="")) is None
    assert outcome(view({}, type="org.example.custom")) is None


def test_user_rules_come_before_defaults_but_after_master() -> None:
    mute_bob = UserRules(own={"sender": [Rule("sender", BOB, [])]})
    mention = view({"body": "hey", "m.mentions": {"user_ids": [ALICE]}})
    # .m.rule.is_user_mention is an override: it beats sender rules.
    assert notified(mention, rules=mute_bob)[0]
    assert not notified(view(), rules=mute_bob)[0]  # the sender rule beats .m.rule.message
    loud = UserRules(
        own={"override": [Rule("override", "loud", ["notify"], conditions=[])]},
        default_changes={("override", ".m.rule.master"): (True, None)},
    )
    assert not notified(view(), rules=loud)[0]  # master stays first


def test_disabled_and_changed_default_rules() -> None:
    no_message = UserRules(default_changes={("underride", ".m.rule.message"): (False, None)})
    assert outcome(view(), rules=no_message) is None
    louder = UserRules(
        default_changes={
            ("underride", ".m.rule.message"): (None, ["notify", {"set_tweak": "highlight"}])
        }
    )
    assert notified(view(), rules=louder) == (True, True, {"highlight": True})
