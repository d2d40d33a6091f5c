"""The server-default push rules of the current spec (v1.17), in their order.

https://spec.matrix.org/latest/client-server-api/#predefined-rules

v1.17 removed the legacy rules that looked for mentions in the body
(`.m.rule.contains_display_name`, `.m.rule.roomnotif`, `.m.rule.contains_user_name`,
MSC4210): mentions are intentional (`m.mentions`) only. The `contains_display_name`
condition itself is still evaluated, for users' own rules.

Rules naming the user hold `USER` in place of their Matrix ID: the evaluator compiles
those conditions relative to the recipient (one compiled default set for everyone), and
`rules.with_user` puts the real ID in when the rules are shown.
"""

from __future__ import annotations

from typing import Any

from dendrite_lite.push.rules import Rule

# Stands for "the user's Matrix ID" in the definitions below; never a valid user ID.
USER = "\x00user"

_SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _is(key: str, value: Any) -> dict[str, Any]:
    return {"kind": "event_property_is", "key": key, "value": value}


OVERRIDE: tuple[tuple[str, bool, list[dict[str, Any]], list[Any]], ...] = (
    (".m.rule.master", False, [], []),
    (".m.rule.suppress_notices", True, [_match("content.msgtype", "m.notice")], []),
    (
        ".m.rule.invite_for_me",
        True,
        [
            _match("type", "m.room.member"),
            _match("content.membership", "invite"),
            _match("state_key", USER),
        ],
        ["notify", _SOUND_DEFAULT],
    ),
    (".m.rule.member_event", True, [_match("type", "m.room.member")], []),
    (
        ".m.rule.is_user_mention",
        True,
        [
            {
                "kind": "event_property_contains",
                "key": "content.m\\.mentions.user_ids",
                "value": USER,
            }
        ],
        ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
    ),
    (
        ".m.rule.is_room_mention",
        True,
        [
            _is("content.m\\.mentions.room", True),
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        ["notify", _HIGHLIGHT],
    ),
    (
        ".m.rule.tombstone",
        True,
        [_match("type", "m.room.tombstone"), _match("state_key", "")],
        ["notify", _HIGHLIGHT],
    ),
    (".m.rule.reaction", True, [_match("type", "m.reaction")], []),
    (
        ".m.rule.room.server_acl",
        True,
        [_match("type", "m.room.server_acl"), _match("state_key", "")],
        [],
    ),
    (
        ".m.rule.suppress_edits",
        True,
        [_is("content.m\\.relates_to.rel_type", "m.replace")],
        [],
    ),
)

UNDERRIDE: tuple[tuple[str, bool, list[dict[str, Any]], list[Any]], ...] = (
    (
        ".m.rule.call",
        True,
        [_match("type", "m.call.invite")],
        ["notify", {"set_tweak": "sound", "value": "ring"}],
    ),
    (
        ".m.rule.encrypted_room_one_to_one",
        True,
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
        ["notify", _SOUND_DEFAULT],
    ),
    (
        ".m.rule.room_one_to_one",
        True,
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
        ["notify", _SOUND_DEFAULT],
    ),
    (".m.rule.message", True, [_match("type", "m.room.message")], ["notify"]),
    (".m.rule.encrypted", True, [_match("type", "m.room.encrypted")], ["notify"]),
)

MASTER = ".m.rule.master"


def default_rules() -> dict[str, list[Rule]]:
    """The server-default rules by kind, in priority order (with `USER` placeholders)."""
    return {
        "override": [
            Rule("override", rule_id, list(actions), enabled, True, list(conditions))
            for rule_id, enabled, conditions, actions in OVERRIDE
        ],
        "content": [],
        "room": [],
        "sender": [],
        "underride": [
            Rule("underride", rule_id, list(actions), enabled, True, list(conditions))
            for rule_id, enabled, conditions, actions in UNDERRIDE
        ],
    }


DEFAULT_IDS: dict[str, frozenset[str]] = {
    "override": frozenset(rule_id for rule_id, *_ in OVERRIDE),
    "content": frozenset(),
    "room": frozenset(),
    "sender": frozenset(),
    "underride": frozenset(rule_id for rule_id, *_ in UNDERRIDE),
}
