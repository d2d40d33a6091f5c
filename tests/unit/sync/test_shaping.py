"""event_fields paths (appendix: dot-separated property paths) and field selection."""

from __future__ import annotations

import msgspec
import pytest

from dendrite_lite.filters import Filter
from dendrite_lite.sync.shaping import Shaper, only_fields, parse_path


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("content.body", ("content", "body")),
        ("type", ("type",)),
        ("content.m\\.relates_to", ("content", "m.relates_to")),
        ("content.m\\\\foo", ("content", "m\\foo")),
        ("content.m\\x", ("content", "m\\x")),  # other escapes are left as they are
        ("a\\\\.b", ("a\\", "b")),  # an escaped backslash, then a separator
        ("trailing\\", ("trailing\\",)),
        ("a..b", ("a", "", "b")),
        ("", ("",)),
    ],
)
def test_parse_path(path: str, parts: tuple[str, ...]) -> None:
    assert parse_path(path) == parts


EVENT = {
    "type": "m.room.message",
    "sender": "@a:hs",
    "content": {"body": "hi", "m.relates_to": {"rel_type": "m.thread"}, "n": [1, 2]},
    "unsigned": {"age": 5},
}


def test_only_fields_keeps_the_paths_and_their_parents() -> None:
    paths = [parse_path(p) for p in ["type", "content.body", "content.m\\.relates_to"]]
    assert only_fields(EVENT, paths) == {
        "type": "m.room.message",
        "content": {"body": "hi", "m.relates_to": {"rel_type": "m.thread"}},
    }


def test_only_fields_skips_what_is_missing_or_not_an_object() -> None:
    paths = [parse_path(p) for p in ["content.missing", "type.sub", "content.n.0", "nope"]]
    assert only_fields(EVENT, paths) == {}


def test_overlapping_paths_merge() -> None:
    paths = [parse_path(p) for p in ["content", "content.body"]]
    assert only_fields(EVENT, paths) == {"content": EVENT["content"]}
    paths = [parse_path(p) for p in ["content.body", "content"]]
    assert only_fields(EVENT, paths) == {"content": EVENT["content"]}


def test_shaper_identity_and_empty_list() -> None:
    assert Shaper(Filter()).identity
    assert Shaper(Filter(event_fields=[])).identity
    assert not Shaper(Filter(event_fields=["type"])).identity
    assert not Shaper(Filter(event_format="federation")).identity


def test_shaper_client_events() -> None:
    shaper = Shaper(Filter(event_fields=["content.body"]))
    raw = msgspec.Raw(msgspec.json.encode(EVENT))
    [shaped] = shaper.room_events(None, [], [raw])  # type: ignore[arg-type]
    assert msgspec.json.decode(shaped) == {"content": {"body": "hi"}}
