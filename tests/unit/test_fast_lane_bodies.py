"""ParsedBodies: what the fast lane keeps of sliding sync bodies stays bounded."""

from __future__ import annotations

from dendrite_lite.api.fast_lane import PARSED_BODY_MAX_BYTES, ParsedBodies
from dendrite_lite.sliding_sync.requests import parse_unstable


def test_bodies_are_kept_per_user_and_the_oldest_goes_first() -> None:
    bodies = ParsedBodies(2)
    request = parse_unstable({"conn_id": "a"}, "@a:x")
    bodies.add(b"1", {"conn_id": "a"}, "@a:x", request)
    bodies.add(b"1", {"conn_id": "a"}, "@b:x", parse_unstable({"conn_id": "a"}, "@b:x"))
    first = bodies.get(b"1")
    assert first is not None and first.requests["@a:x"] is request
    assert set(first.requests) == {"@a:x", "@b:x"}
    bodies.add(b"2", {}, "@a:x", request)
    assert bodies.get(b"1") is not None  # used last: kept
    bodies.add(b"3", {}, "@a:x", request)
    assert bodies.get(b"2") is None
    assert bodies.get(b"1") is not None and bodies.get(b"3") is not None


def test_large_bodies_are_not_kept() -> None:
    bodies = ParsedBodies(8)
    raw = b" " * (PARSED_BODY_MAX_BYTES + 1)
    bodies.add(raw, {}, "@a:x", parse_unstable({}, "@a:x"))
    assert bodies.get(raw) is None
