"""required_state in both request shapes, normalised and matched (pure)."""

from __future__ import annotations

from dendrite_lite.sliding_sync.required_state import (
    RoomConfig,
    decode_config,
    encode_config,
    from_elements,
    from_pairs,
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
