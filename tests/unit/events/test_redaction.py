"""The redaction algorithm, per room version and per event type."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

ALL_VERSIONS = [KNOWN_ROOM_VERSIONS[str(n)] for n in range(1, 13)]

TOP_LEVEL_ALL = {
    "event_id": "$e:x",
    "type": "m.room.message",
    "room_id": "!r:x",
    "sender": "@s:x",
    "state_key": "",
    "content": {},
    "hashes": {"sha256": "h"},
    "signatures": {"x": {"ed25519:1": "s"}},
    "depth": 3,
    "prev_events": [],
    "prev_state": [],
    "auth_events": [],
    "origin": "x",
    "origin_server_ts": 1,
    "membership": "join",
    "unsigned": {"age_ts": 1, "redacted_because": {}},
    "redacts": "$other:x",
    "age_ts": 5,
    "custom": True,
}
KEEP_V1_TO_V10 = {
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "prev_state",
    "auth_events",
    "origin",
    "origin_server_ts",
    "membership",
}
KEEP_V11_PLUS = KEEP_V1_TO_V10 - {"prev_state", "origin", "membership"}


@pytest.mark.parametrize("room_version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_top_level_keys(room_version: RoomVersion) -> None:
    redacted = redact(TOP_LEVEL_ALL, room_version)
    expected = KEEP_V11_PLUS if int(room_version.identifier) >= 11 else KEEP_V1_TO_V10
    assert set(redacted) == expected
    assert "unsigned" not in redacted  # the algorithm strips it like any other key


CONTENT_CASES: dict[str, dict[str, Any]] = {
    "m.room.member": {
        "membership": "join",
        "join_authorised_via_users_server": "@a:x",
        "displayname": "Alice",
        "third_party_invite": {"signed": {"mxid": "@a:x", "token": "t"}, "display_name": "A"},
    },
    "m.room.create": {
        "creator": "@a:x",
        "room_version": "9",
        "m.federate": False,
        "predecessor": {"room_id": "!old:x"},
    },
    "m.room.join_rules": {"join_rule": "restricted", "allow": [{"type": "x"}], "other": 1},
    "m.room.power_levels": {
        "ban": 50,
        "events": {},
        "events_default": 0,
        "kick": 50,
        "redact": 50,
        "state_default": 50,
        "users": {},
        "users_default": 0,
        "invite": 0,
        "notifications": {"room": 50},
        "historical": 100,
    },
    "m.room.aliases": {"aliases": ["#a:x"], "other": 1},
    "m.room.history_visibility": {"history_visibility": "shared", "other": 1},
    "m.room.redaction": {"redacts": "$e:x", "reason": "spam"},
    "m.room.message": {"body": "hello", "msgtype": "m.text"},
}

PL_KEYS = {"ban", "events", "events_default", "kick", "redact", "state_default", "users"}
PL_KEYS |= {"users_default"}


def expected_content_keys(event_type: str, version: int) -> set[str]:
    if event_type == "m.room.member":
        keys = {"membership"}
        if version >= 9:
            keys.add("join_authorised_via_users_server")
        if version >= 11:
            keys.add("third_party_invite")
        return keys
    if event_type == "m.room.create":
        return set(CONTENT_CASES[event_type]) if version >= 11 else {"creator"}
    if event_type == "m.room.join_rules":
        return {"join_rule", "allow"} if version >= 8 else {"join_rule"}
    if event_type == "m.room.power_levels":
        return PL_KEYS | {"invite"} if version >= 11 else PL_KEYS
    if event_type == "m.room.aliases":
        return {"aliases"} if version <= 5 else set()
    if event_type == "m.room.history_visibility":
        return {"history_visibility"}
    if event_type == "m.room.redaction":
        return {"redacts"} if version >= 11 else set()
    return set()


@pytest.mark.parametrize("room_version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
@pytest.mark.parametrize("event_type", sorted(CONTENT_CASES))
def test_content_keys(event_type: str, room_version: RoomVersion) -> None:
    event = {"type": event_type, "content": CONTENT_CASES[event_type], "state_key": ""}
    redacted = redact(event, room_version)
    version = int(room_version.identifier)
    assert set(redacted["content"]) == expected_content_keys(event_type, version)
    for key, value in redacted["content"].items():
        if key != "third_party_invite":
            assert value == CONTENT_CASES[event_type][key]


@pytest.mark.parametrize("room_version", ALL_VERSIONS[10:], ids=lambda v: f"v{v.identifier}")
def test_third_party_invite_keeps_only_signed(room_version: RoomVersion) -> None:
    def content_after(third_party_invite: object) -> dict[str, Any]:
        event = {
            "type": "m.room.member",
            "content": {"membership": "invite", "third_party_invite": third_party_invite},
        }
        return redact(event, room_version)["content"]

    signed = {"mxid": "@a:x", "token": "t", "signatures": {}}
    assert content_after({"signed": signed, "display_name": "A"}) == {
        "membership": "invite",
        "third_party_invite": {"signed": signed},
    }
    assert content_after({"display_name": "A"}) == {
        "membership": "invite",
        "third_party_invite": {},
    }
    assert content_after("not an object") == {"membership": "invite"}


def test_redaction_does_not_mutate_input_and_handles_missing_content() -> None:
    event = {"type": "m.room.member", "content": {"membership": "join", "displayname": "A"}}
    snapshot = {"type": "m.room.member", "content": {"membership": "join", "displayname": "A"}}
    redact(event, KNOWN_ROOM_VERSIONS["10"])
    assert event == snapshot
    assert redact({"type": "m.room.message"}, KNOWN_ROOM_VERSIONS["1"]) == {
        "type": "m.room.message",
        "content": {},
    }
    assert redact({"type": "x", "content": "junk"}, KNOWN_ROOM_VERSIONS["11"])["content"] == {}


def test_redacting_twice_is_idempotent() -> None:
    for version in ALL_VERSIONS:
        for event_type, content in CONTENT_CASES.items():
            event = dict(TOP_LEVEL_ALL, type=event_type, content=content)
            once = redact(event, version)
            assert redact(once, version) == once
