"""Content hashes, reference hashes and event IDs (spec vectors and real Synapse events)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import canonicaljson
import pytest

from dendrite_lite.events.hashes import (
    ContentHashError,
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    create_event_id_for_room_id,
    generate_v1_event_id,
    room_id_from_create_event_id,
)
from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersions

REAL_EVENTS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "real_events.json").read_text()
)

MINIMAL_EVENT = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}


def test_spec_content_hash_vectors() -> None:
    # Appendix "Event Signing" vectors: the hashes part.
    assert add_content_hash(MINIMAL_EVENT, RoomVersions.V1)["hashes"] == {
        "sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
    }
    message = {
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }
    assert add_content_hash(message, RoomVersions.V1)["hashes"] == {
        "sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
    }


@pytest.mark.parametrize("case", ["v1_room_name", "v5_create_jki_re"])
def test_real_events_content_hash_and_event_id(case: str) -> None:
    vector = REAL_EVENTS[case]
    room_version = KNOWN_ROOM_VERSIONS[vector["room_version"]]
    check_content_hash(vector["event"], room_version)
    assert compute_event_id(vector["event"], room_version) == vector["expected_event_id"]


def test_v3_uses_standard_base64_and_v4_urlsafe() -> None:
    event = REAL_EVENTS["v5_create_jki_re"]["event"]
    assert (
        compute_event_id(event, RoomVersions.V3)
        == (REAL_EVENTS["v5_create_jki_re"]["expected_event_id_if_v3"])
    )
    for version in ("4", "5", "6", "10", "11", "12"):
        assert "/" not in compute_event_id(event, KNOWN_ROOM_VERSIONS[version])


def test_reference_hash_matches_independent_computation() -> None:
    event = dict(MINIMAL_EVENT, content={"body": "secret"}, type="m.room.message")
    for room_version in KNOWN_ROOM_VERSIONS.values():
        redacted = redact(event, room_version)
        redacted.pop("signatures")
        expected = hashlib.sha256(canonicaljson.encode_canonical_json(redacted)).digest()
        assert compute_reference_hash(event, room_version) == expected
    event_id = compute_event_id(event, RoomVersions.V11)
    digest = compute_reference_hash(event, RoomVersions.V11)
    assert event_id == "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_reference_hash_is_stable_under_redaction_but_content_hash_is_not() -> None:
    event = add_content_hash(dict(MINIMAL_EVENT, content={"body": "hi"}), RoomVersions.V10)
    redacted = redact(event, RoomVersions.V10)
    assert compute_event_id(event, RoomVersions.V10) == compute_event_id(redacted, RoomVersions.V10)
    check_content_hash(event, RoomVersions.V10)
    with pytest.raises(ContentHashError, match="does not match"):
        check_content_hash(redacted, RoomVersions.V10)


def test_unsigned_and_signatures_do_not_affect_hashes() -> None:
    a = dict(MINIMAL_EVENT)
    b = dict(MINIMAL_EVENT, unsigned={"age": 5}, signatures={"x": {"ed25519:1": "sig"}})
    for version in (RoomVersions.V1, RoomVersions.V12):
        assert compute_content_hash(a, version) == compute_content_hash(b, version)
        assert compute_reference_hash(a, version) == compute_reference_hash(b, version)


def test_check_content_hash_errors() -> None:
    with pytest.raises(ContentHashError, match="no sha256"):
        check_content_hash({"type": "x"}, RoomVersions.V10)
    with pytest.raises(ContentHashError, match="no sha256"):
        check_content_hash({"hashes": "junk"}, RoomVersions.V10)
    with pytest.raises(ContentHashError, match="base64"):
        check_content_hash({"hashes": {"sha256": "***"}}, RoomVersions.V10)


def test_legacy_versions_hash_floats_strict_versions_refuse() -> None:
    event = dict(MINIMAL_EVENT, content={"users": {"@a:b": 50.5}})
    hashed = add_content_hash(event, RoomVersions.V5)
    check_content_hash(hashed, RoomVersions.V5)
    with pytest.raises(ValueError, match="floats"):
        add_content_hash(event, RoomVersions.V6)


def test_v1_event_ids() -> None:
    event_id = generate_v1_event_id("example.org")
    assert event_id.startswith("$") and event_id.endswith(":example.org")
    assert len(event_id.split(":")[0]) == 19
    assert generate_v1_event_id("example.org") != event_id
    assert compute_event_id({"event_id": "$a:b"}, RoomVersions.V2) == "$a:b"
    with pytest.raises(ValueError, match="event_id"):
        compute_event_id({}, RoomVersions.V1)


def test_v12_room_ids() -> None:
    assert room_id_from_create_event_id("$abc-_") == "!abc-_"
    assert create_event_id_for_room_id("!abc-_") == "$abc-_"
    with pytest.raises(ValueError):
        room_id_from_create_event_id("!abc")
    with pytest.raises(ValueError):
        create_event_id_for_room_id("$abc")
