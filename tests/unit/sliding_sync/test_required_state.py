"""required_state in both request shapes, normalised and matched (pure)."""

from __future__ import annotations

from dendrite_lite.sliding_sync.requests import parse_unstable
from dendrite_lite.sliding_sync.required_state import (
    RoomConfig,
    decode_config,
    encode_config,
    from_elements,
    from_pairs,
    room_config,
)

ME = "@me:example.org"


def test_exact_pairs_and_me() -> None:
    spec = from_pairs([("m.room.name", ""), ("m.room.member", "$ME")], ME)
    assert spec.matches("m.room.name", "")
    assert spec.matches("m.room.member", ME)
    assert not spec.matches("m.room.member", "@other:example.org")
    assert not spec.matches("m.room.topic", "")
    assert not spec.all_members()
    assert spec.member_keys() == {ME}


def test_wildcards() -> None:
    spec = from_pairs([("m.space.child", "*"), ("*", "")], ME)
    assert spec.matches("m.space.child", "!a:b")
    assert spec.matches("m.room.topic", "")
    assert not spec.matches("m.room.member", ME)
    everything = from_pairs([("*", "*")], ME)
    assert everything.matches("anything", "at all")
    assert everything.all_members()


def test_lazy_is_a_flag_not_a_state_key() -> None:
    spec = from_pairs([("m.room.member", "$LAZY")], ME)
    assert spec.lazy_members
    assert not spec.matches("m.room.member", "$LAZY")
    assert spec.member_keys() == set()


def test_stable_include_exclude() -> None:
    spec = from_elements([(None, None)], [("m.room.create", "")], True, ME)
    assert spec.matches("m.room.name", "")
    assert not spec.matches("m.room.create", "")
    assert spec.lazy_members
    by_key = from_elements([(None, "$ME")], [], False, ME)
    assert by_key.matches("m.room.member", ME)
    assert by_key.matches("com.example", ME)
    members = from_elements([("m.room.member", None)], [("m.room.member", ME)], False, ME)
    assert members.all_members()
    assert not members.matches("m.room.member", ME)
    all_excluded = from_elements([(None, None)], [("m.room.member", None)], False, ME)
    assert not all_excluded.all_members()


def test_configs_combine_as_a_superset_and_detect_expansion() -> None:
    small = RoomConfig(1, frozenset({from_pairs([("m.room.name", "")], ME)}))
    big = RoomConfig(20, frozenset({from_pairs([("*", "*")], ME)}))
    both = small.combine(big)
    assert both.timeline_limit == 20
    assert both.matches("m.room.topic", "")
    assert both.expands(small)
    assert not small.expands(both)
    assert not small.expands(small)


def test_config_round_trips_through_json() -> None:
    spec = from_elements([("m.room.name", "")], [("x", None)], True, ME)
    config = RoomConfig(5, frozenset({spec, from_pairs([("a", "*")], ME)}))
    assert decode_config(encode_config(config)) == config


def test_equal_configs_are_one_object() -> None:
    """A client repeats its request on every poll: the configs parsed from it, and the
    ones stored for a restart, are the very objects the rooms were last sent with, so
    comparing them costs no hashing; equal configs built apart still compare equal."""
    body = {
        "lists": {
            "all": {
                "ranges": [[0, 9]],
                "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
                "timeline_limit": 1,
            }
        },
        "room_subscriptions": {"!r:x": {"required_state": [["*", "*"]], "timeline_limit": 5}},
    }
    first, again = parse_unstable(body, ME), parse_unstable(body, ME)
    assert first.lists["all"].config is again.lists["all"].config
    assert first.subscriptions["!r:x"] is again.subscriptions["!r:x"]
    config = first.lists["all"].config
    assert decode_config(encode_config(config)) is config
    assert not config.expands(config)
    built_apart = RoomConfig(1, frozenset({from_pairs([("m.room.name", "")], ME)}))
    assert room_config(1, from_pairs([("m.room.name", "")], ME)) == built_apart
    assert not built_apart.expands(room_config(1, from_pairs([("m.room.name", "")], ME)))
    assert config.combine(config) is config


def test_a_combined_configs_member_answers_are_the_union_of_its_rules() -> None:
    """Worked out once per config (required_state._derived) and the same every time."""
    mine = room_config(1, from_pairs([("m.room.member", "$ME"), ("m.room.name", "")], ME))
    lazy = room_config(5, from_pairs([("m.room.member", "$LAZY")], ME))
    others = room_config(1, from_pairs([("m.room.member", "@other:example.org")], ME))
    combined = mine.combine(lazy).combine(others)
    assert not mine.lazy_members and lazy.lazy_members and combined.lazy_members
    assert combined.member_keys() == {ME, "@other:example.org"}
    assert combined.member_keys() is combined.member_keys()
    assert lazy.member_keys() == frozenset()
    assert not combined.all_members()
    assert combined.combine(room_config(1, from_pairs([("m.room.member", "*")], ME))).all_members()
