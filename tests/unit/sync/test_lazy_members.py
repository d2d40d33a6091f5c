"""The memory of lazy-loaded member events sent to each device."""

from __future__ import annotations

from dendrite_lite.sync.lazy_members import SentMembers

DEVICE = ("@a:hs", "PHONE")


def test_received_only_once_acknowledged() -> None:
    sent = SentMembers()
    sent.record(DEVICE, "!r", {"@b:hs": 10, "@c:hs": 11}, position=50)
    # A sync from before that response: not received.
    assert sent.received(DEVICE, "!r", 49) == {}
    assert sent.received(DEVICE, "!r", 50) == {"@b:hs": 10, "@c:hs": 11}
    assert sent.received(DEVICE, "!other", 50) == {}
    assert sent.received(("@a:hs", "LAPTOP"), "!r", 50) == {}


def test_a_new_member_event_replaces_the_old() -> None:
    sent = SentMembers()
    sent.record(DEVICE, "!r", {"@b:hs": 10}, position=50)
    sent.record(DEVICE, "!r", {"@b:hs": 12}, position=60)
    assert sent.received(DEVICE, "!r", 55) == {}
    assert sent.received(DEVICE, "!r", 60) == {"@b:hs": 12}
    # Sending the same event again keeps the earlier position.
    sent.record(DEVICE, "!r", {"@b:hs": 12}, position=70)
    assert sent.received(DEVICE, "!r", 60) == {"@b:hs": 12}


def test_forget_and_bounds() -> None:
    sent = SentMembers(max_devices=2, max_per_room=2)
    sent.record(DEVICE, "!r", {"@b:hs": 1, "@c:hs": 2, "@d:hs": 3}, position=5)
    assert sent.received(DEVICE, "!r", 5) == {"@c:hs": 2, "@d:hs": 3}
    sent.record(("@x:hs", "X"), "!r", {"@b:hs": 1}, position=5)
    sent.record(("@y:hs", "Y"), "!r", {"@b:hs": 1}, position=5)
    assert sent.received(DEVICE, "!r", 5) == {}  # evicted: the least recently used
    sent.forget(("@y:hs", "Y"))
    assert sent.received(("@y:hs", "Y"), "!r", 5) == {}
    assert sent.received(("@x:hs", "X"), "!r", 5) == {"@b:hs": 1}
