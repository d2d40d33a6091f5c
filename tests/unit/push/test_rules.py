"""What clients may send as push rules: rule IDs, actions, conditions, patterns."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.push.rules import (
    check_kind,
    check_new_rule_id,
    parse_actions,
    parse_condition,
    parse_new_rule,
)


def error(call: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(MatrixError) as caught:
        call(*args)
    return caught.value.status, caught.value.errcode


def test_kinds() -> None:
    for kind in ("override", "content", "room", "sender", "underride"):
        check_kind(kind)
    assert error(check_kind, "global") == (400, "M_INVALID_PARAM")
    assert error(check_kind, "Override") == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("kind", "rule_id"),
    [
        ("override", ".m.rule.master"),
        ("override", ".mine"),
        ("content", "a/b"),
        ("content", "a\\b"),
        ("content", ""),
        ("content", "x" * 256),
        ("room", "not-a-room"),
        ("sender", "bob"),
        ("sender", "@bob"),
    ],
)
def test_bad_rule_ids(kind: str, rule_id: str) -> None:
    assert error(check_new_rule_id, kind, rule_id) == (400, "M_INVALID_PARAM")


def test_good_rule_ids() -> None:
    check_new_rule_id("override", "my.rule")
    check_new_rule_id("room", "!abc:example.org")
    check_new_rule_id("room", "!opaqueV12roomid")
    check_new_rule_id("sender", "@bob:example.org")


def test_actions() -> None:
    assert parse_actions(["notify", {"set_tweak": "sound", "value": "bing"}]) == [
        "notify",
        {"set_tweak": "sound", "value": "bing"},
    ]
    # Historical actions are stripped: ["dont_notify"] is the empty list.
    assert parse_actions(["dont_notify"]) == []
    assert parse_actions(["coalesce", "notify"]) == ["notify"]
    assert parse_actions([{"set_tweak": "highlight"}]) == [{"set_tweak": "highlight"}]
    assert parse_actions([{"set_tweak": "org.example.custom", "value": {"any": 1}}])


@pytest.mark.parametrize(
    "actions",
    [
        "notify",
        {"notify": True},
        ["notify_loudly"],
        [5],
        [{"value": "x"}],
        [{"set_tweak": ""}],
        [{"set_tweak": "highlight", "value": "yes"}],
        ["notify"] * 33,
    ],
)
def test_bad_actions(actions: Any) -> None:
    assert error(parse_actions, actions) == (400, "M_BAD_JSON")


@pytest.mark.parametrize(
    "condition",
    [
        "event_match",
        {"key": "type", "pattern": "x"},
        {"kind": "event_match", "key": "type"},
        {"kind": "event_match", "pattern": "x"},
        {"kind": "event_match", "key": "", "pattern": "x"},
        {"kind": "event_match", "key": "type", "pattern": 5},
        {"kind": "event_match", "key": "content.body", "pattern": "x" * 1025},
        {"kind": "event_property_is", "key": "content.x"},
        {"kind": "event_property_is", "key": "content.x", "value": 1.5},
        {"kind": "event_property_is", "key": "content.x", "value": 2**53},
        {"kind": "event_property_contains", "key": "content.x", "value": [1]},
        {"kind": "room_member_count"},
        {"kind": "room_member_count", "is": 2},
        {"kind": "room_member_count", "is": "=2"},
        {"kind": "room_member_count", "is": "2.5"},
        {"kind": "sender_notification_permission"},
    ],
)
def test_bad_conditions(condition: Any) -> None:
    assert error(parse_condition, condition) == (400, "M_BAD_JSON")


def test_good_conditions() -> None:
    assert parse_condition({"kind": "room_member_count", "is": ">=10"}) == {
        "kind": "room_member_count",
        "is": ">=10",
    }
    assert parse_condition({"kind": "event_property_is", "key": "content.x", "value": None})
    assert parse_condition({"kind": "contains_display_name", "extra": 1}) == {
        "kind": "contains_display_name"
    }
    # Unknown kinds are kept (they never match, as the spec says).
    assert parse_condition({"kind": "org.example.new", "x": 1}) == {
        "kind": "org.example.new",
        "x": 1,
    }


def test_new_rules_by_kind() -> None:
    content = parse_new_rule("content", "cake", {"pattern": "cake*lie", "actions": ["notify"]})
    assert content.to_json() == {
        "rule_id": "cake",
        "default": False,
        "enabled": True,
        "actions": ["notify"],
        "pattern": "cake*lie",
    }
    override = parse_new_rule("override", "o", {"actions": []})
    assert override.to_json()["conditions"] == []  # no conditions: always matches
    room = parse_new_rule("room", "!r:x", {"actions": [], "conditions": [{"kind": "x"}]})
    assert "conditions" not in room.to_json()
    assert error(parse_new_rule, "content", "cake", {"actions": []}) == (400, "M_BAD_JSON")
    assert error(parse_new_rule, "override", "o", {"conditions": []}) == (400, "M_BAD_JSON")
    assert error(parse_new_rule, "override", "o", []) == (400, "M_BAD_JSON")
    assert error(parse_new_rule, "override", "o", {"actions": [], "conditions": {}}) == (
        400,
        "M_BAD_JSON",
    )
