"""Each condition kind of https://spec.matrix.org/latest/client-server-api/#conditions-1"""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.push.evaluator import (
    ContainsDisplayName,
    EventView,
    Never,
    compile_condition,
    split_path,
)
from tests.unit.push.conftest import ALICE, view


def holds(condition: dict[str, Any], event: EventView, display_name: str | None = None) -> bool:
    return compile_condition(condition).test(event, ALICE, display_name)


def test_split_path_escapes() -> None:
    assert split_path("content.body") == ("content", "body")
    assert split_path("content.m\\.relates_to.rel_type") == ("content", "m.relates_to", "rel_type")
    assert split_path("content.m\\\\foo") == ("content", "m\\foo")
    assert split_path("content.m\\xfoo") == ("content", "m\\xfoo")  # other escapes are literal
    assert split_path("a..b") == ("a", "", "b")


# -- event_match --------------------------------------------------------------------------


def test_event_match_whole_value_case_insensitive() -> None:
    topic = view({"topic": "Lunch plans"}, type="m.room.topic", state_key="")
    condition = {"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}
    assert holds(condition, topic)
    assert not holds(condition, view({"topic": " lunch"}, type="m.room.topic", state_key=""))


def test_event_match_needs_a_string() -> None:
    star = {"kind": "event_match", "key": "content.topic", "pattern": "*"}
    assert not holds(star, view({"topic": None}))
    assert not holds(star, view({"topic": 5}))
    assert not holds(star, view({}))  # absent: no match, even for '*'
    assert holds(star, view({"topic": ""}))


def test_event_match_body_at_word_boundaries() -> None:
    condition = {"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}
    assert holds(condition, view({"body": "An exciting triple-whammy"}))
    assert not holds(condition, view({"body": "Anexample"}))
    # Only content.body is matched by words; other keys match whole values.
    other = {"kind": "event_match", "key": "content.other", "pattern": "ex*ple"}
    assert not holds(other, view({"other": "An example event."}))


def test_event_match_top_level_keys() -> None:
    assert holds({"kind": "event_match", "key": "type", "pattern": "m.room.*"}, view())
    assert holds({"kind": "event_match", "key": "room_id", "pattern": "!room:*"}, view())
    assert not holds({"kind": "event_match", "key": "state_key", "pattern": "*"}, view())


# -- event_property_is / event_property_contains -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "wanted", "expected"),
    [
        (True, True, True),
        ("true", True, False),  # no casts
        (1, True, False),  # booleans are not integers
        (1, 1, True),
        (1, "1", False),
        (None, None, True),
        ("m.replace", "m.replace", True),
        ("M.REPLACE", "m.replace", False),  # exact, not case-insensitive
        ({"a": 1}, None, False),
        ([1], 1, False),
    ],
)
def test_event_property_is(value: Any, wanted: Any, expected: bool) -> None:
    event = view({"m.federate": value})
    assert (
        holds({"kind": "event_property_is", "key": "content.m\\.federate", "value": wanted}, event)
        is expected
    )


def test_event_property_is_absent_property() -> None:
    condition = {"kind": "event_property_is", "key": "content.nothing", "value": None}
    assert not holds(condition, view({}))


def test_event_property_contains() -> None:
    aliases = view({"alt_aliases": ["#somewhere:example.org", "#myroom:example.com", 3, True]})
    key = "content.alt_aliases"
    assert holds(
        {"kind": "event_property_contains", "key": key, "value": "#myroom:example.com"}, aliases
    )
    assert not holds(
        {"kind": "event_property_contains", "key": key, "value": ":example.com"}, aliases
    )
    assert holds({"kind": "event_property_contains", "key": key, "value": 3}, aliases)
    assert holds({"kind": "event_property_contains", "key": key, "value": True}, aliases)
    assert not holds({"kind": "event_property_contains", "key": key, "value": 1}, aliases)
    not_array = view({"alt_aliases": "#myroom:example.com"})
    assert not holds(
        {"kind": "event_property_contains", "key": key, "value": "#myroom:example.com"}, not_array
    )


# -- contains_display_name -------------------------------------------------------------------


def test_contains_display_name() -> None:
    condition = {"kind": "contains_display_name"}
    assert holds(condition, view({"body": "hey Alice Liddell, tea?"}), "Alice Liddell")
    assert holds(condition, view({"body": "ALICE LIDDELL!"}), "Alice Liddell")
    assert not holds(condition, view({"body": "hey AliceLiddell"}), "Alice Liddell")
    assert not holds(condition, view({"body": "hey Alice"}), None)  # no display name
    assert not holds(condition, view({"body": "hey Alice"}), "")
    assert not holds(condition, view({"body": 5}), "Alice")
    # A display name is text: its '?' and '*' are not wildcards.
    assert not holds(condition, view({"body": "who is Alice!"}), "Alice?")
    assert holds(condition, view({"body": "who is Alice? me"}), "Alice?")
    assert isinstance(compile_condition(condition), ContainsDisplayName)


# -- room_member_count ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "members", "expected"),
    [
        ("2", 2, True),
        ("2", 3, False),
        ("==2", 2, True),
        ("<3", 2, True),
        ("<3", 3, False),
        (">3", 4, True),
        (">3", 3, False),
        ("<=3", 3, True),
        ("<=3", 4, False),
        (">=3", 3, True),
        (">=3", 2, False),
        ("x3", 3, False),  # malformed: never matches
    ],
)
def test_room_member_count(spec: str, members: int, expected: bool) -> None:
    assert holds({"kind": "room_member_count", "is": spec}, view(members=members)) is expected


# -- sender_notification_permission -----------------------------------------------------------


def test_sender_notification_permission() -> None:
    condition = {"kind": "sender_notification_permission", "key": "room"}
    assert not holds(condition, view(sender_level=0))
    assert holds(condition, view(sender_level=50))  # the default for room is 50
    assert holds(condition, view(sender_level=10, notifications={"room": 10}))
    assert not holds(condition, view(sender_level=10, notifications={"room": 20}))
    assert holds(condition, view(sender_level=float("inf")))  # v12 creators


# -- unknown kinds ---------------------------------------------------------------------------


def test_unknown_and_malformed_conditions_never_match() -> None:
    for condition in (
        {"kind": "org.example.future"},
        {"kind": "event_match", "key": "type"},  # no pattern
        {"kind": "event_property_is", "key": "type"},  # no value
        {"kind": "room_member_count"},
    ):
        compiled = compile_condition(condition)
        assert isinstance(compiled, Never)
        assert not compiled.test(view(), ALICE, None)
