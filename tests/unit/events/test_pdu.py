"""The Pdu view, size limits, and building/finalising events for each room version."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.events.event_signing import verify_event_signature
from dendrite_lite.events.hashes import check_content_hash, compute_event_id
from dendrite_lite.events.pdu import (
    MAX_PDU_SIZE,
    EventSizeError,
    Pdu,
    PduFormatError,
    build_event,
    check_size_limits,
    finalise_event,
    max_depth,
)
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, RoomVersions
from dendrite_lite.events.signing import ServerSigningKey

KEY = ServerSigningKey.generate("test")
ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())


def v3_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "m.room.member",
        "room_id": "!r:x",
        "sender": "@a:x",
        "state_key": "@a:x",
        "content": {"membership": "join"},
        "prev_events": ["$p"],
        "auth_events": ["$c", "$pl"],
        "depth": 4,
        "origin_server_ts": 10,
        "hashes": {"sha256": "x"},
        "signatures": {"x": {"ed25519:1": "s"}},
    }
    event.update(overrides)
    return event


class TestPduFromDict:
    def test_v3_plus_fields(self) -> None:
        pdu = Pdu.from_dict(v3_event(), RoomVersions.V10, event_id="$given")
        assert pdu.event_id == "$given"
        assert pdu.prev_events == ("$p",)
        assert pdu.auth_events == ("$c", "$pl")
        assert pdu.membership == "join"
        assert pdu.is_state and pdu.state_map_key == ("m.room.member", "@a:x")
        assert pdu.effective_room_id == "!r:x"
        assert pdu.signatures == {"x": {"ed25519:1": "s"}}

    def test_event_id_computed_when_not_given(self) -> None:
        event = v3_event()
        pdu = Pdu.from_dict(event, RoomVersions.V4)
        assert pdu.event_id == compute_event_id(event, RoomVersions.V4)

    def test_v1_reference_pairs(self) -> None:
        event = v3_event(
            event_id="$e:x",
            prev_events=[["$p:x", {"sha256": "h"}]],
            auth_events=[["$c:x", {}], ["$pl:x", {"sha256": "h"}]],
        )
        pdu = Pdu.from_dict(event, RoomVersions.V1)
        assert pdu.event_id == "$e:x"
        assert pdu.prev_events == ("$p:x",)
        assert pdu.auth_events == ("$c:x", "$pl:x")
        with pytest.raises(PduFormatError, match="pairs"):
            Pdu.from_dict(v3_event(event_id="$e:x"), RoomVersions.V2)
        with pytest.raises(PduFormatError, match="event IDs"):
            Pdu.from_dict(event, RoomVersions.V3)
        with pytest.raises(PduFormatError, match="event_id"):
            Pdu.from_dict(v3_event(prev_events=[], auth_events=[]), RoomVersions.V1)

    def test_redacts_location_depends_on_version(self) -> None:
        event = v3_event(
            type="m.room.redaction", redacts="$top", content={"redacts": "$inner"}, state_key=None
        )
        del event["state_key"]
        assert Pdu.from_dict(event, RoomVersions.V10, event_id="$r").redacts == "$top"
        assert Pdu.from_dict(event, RoomVersions.V11, event_id="$r").redacts == "$inner"
        message = Pdu.from_dict(event, RoomVersions.V11, event_id="$r")
        assert not message.is_state
        with pytest.raises(ValueError, match="not a state event"):
            _ = message.state_map_key

    def test_v12_create_has_no_room_id(self) -> None:
        create = v3_event(type="m.room.create", state_key="", content={}, prev_events=[])
        del create["room_id"]
        pdu = Pdu.from_dict(create, RoomVersions.V12, event_id="$hash")
        assert pdu.room_id is None
        assert pdu.effective_room_id == "!hash"
        with pytest.raises(PduFormatError, match="room_id is required"):
            Pdu.from_dict(create, RoomVersions.V11, event_id="$hash")
        other = v3_event()
        del other["room_id"]
        with pytest.raises(PduFormatError, match="room_id is required"):
            Pdu.from_dict(other, RoomVersions.V12, event_id="$e")

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"type": 5}, "type"),
            ({"sender": None}, "sender"),
            ({"content": []}, "content"),
            ({"state_key": 1}, "state_key"),
            ({"room_id": 1}, "room_id"),
            ({"depth": "4"}, "depth"),
            ({"depth": True}, "depth"),
            ({"origin_server_ts": 1.5}, "origin_server_ts"),
            ({"prev_events": "$p"}, "prev_events"),
        ],
    )
    def test_format_errors(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(PduFormatError, match=message):
            Pdu.from_dict(v3_event(**overrides), RoomVersions.V10, event_id="$e")

    def test_lenient_about_signatures_and_membership(self) -> None:
        pdu = Pdu.from_dict(
            v3_event(signatures="junk", content={"membership": 5}), RoomVersions.V10, event_id="$e"
        )
        assert pdu.signatures == {}
        assert pdu.membership is None


class TestSizeLimits:
    def test_whole_event_limit(self) -> None:
        event = v3_event(content={"body": "x" * (MAX_PDU_SIZE - 300)})
        check_size_limits(event, RoomVersions.V11)
        event["content"]["body"] += "x" * 300
        with pytest.raises(EventSizeError) as info:
            check_size_limits(event, RoomVersions.V11)
        assert info.value.field == "event" and info.value.size > MAX_PDU_SIZE

    @pytest.mark.parametrize("field", ["sender", "room_id", "state_key", "type", "event_id"])
    def test_field_limits(self, field: str) -> None:
        ok = v3_event(**{field: "@" + "a" * 250 + ":x"})
        check_size_limits(ok, RoomVersions.V11)
        too_long = v3_event(**{field: "@" + "a" * 253 + ":x"})
        with pytest.raises(EventSizeError, match=field) as info:
            check_size_limits(too_long, RoomVersions.V11)
        assert not info.value.soft

    def test_byte_overrun_is_soft_before_v11(self) -> None:
        multibyte = v3_event(state_key="é" * 200)  # 200 codepoints, 400 bytes
        with pytest.raises(EventSizeError) as info:
            check_size_limits(multibyte, RoomVersions.V10)
        assert info.value.soft
        with pytest.raises(EventSizeError) as info:
            check_size_limits(multibyte, RoomVersions.V11)
        assert not info.value.soft

    def test_external_event_id(self) -> None:
        with pytest.raises(EventSizeError, match="event_id"):
            check_size_limits(v3_event(), RoomVersions.V11, event_id="$" + "a" * 255)


def build(room_version: RoomVersion, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "event_type": "m.room.message",
        "sender": "@a:x",
        "content": {"body": "hi"},
        "room_id": "!r:x",
        "prev_events": ["$p:x"],
        "auth_events": ["$c:x", "$m:x"],
        "depth": 5,
        "origin_server_ts": 1234,
    }
    kwargs.update(overrides)
    return build_event(room_version, **kwargs)


class TestBuildAndFinalise:
    @pytest.mark.parametrize("room_version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
    def test_roundtrip(self, room_version: RoomVersion) -> None:
        room_id = "!hash" if room_version.room_id_is_create_event_id else "!r:x"
        event = build(
            room_version,
            room_id=room_id,
            reference_hashes={"$p:x": "PHASH"},
            unsigned={"age_ts": 1},
        )
        event_id, pdu = finalise_event(event, room_version, "x", KEY)
        check_content_hash(pdu, room_version)
        verify_event_signature(pdu, room_version, "x", KEY.key_id, KEY.verify_key)
        parsed = Pdu.from_dict(pdu, room_version)
        assert parsed.event_id == event_id
        assert parsed.prev_events == ("$p:x",)
        assert parsed.content == {"body": "hi"}
        assert pdu["unsigned"] == {"age_ts": 1}
        if room_version.identifier in ("1", "2"):
            assert event_id.endswith(":x")
            assert pdu["prev_events"] == [["$p:x", {"sha256": "PHASH"}]]
            assert pdu["auth_events"] == [["$c:x", {}], ["$m:x", {}]]
        else:
            assert "event_id" not in pdu
            assert pdu["prev_events"] == ["$p:x"]

    def test_redacts_placement(self) -> None:
        old = build(RoomVersions.V10, event_type="m.room.redaction", content={}, redacts="$t")
        assert old["redacts"] == "$t" and "redacts" not in old["content"]
        new = build(RoomVersions.V11, event_type="m.room.redaction", content={}, redacts="$t")
        assert new["content"] == {"redacts": "$t"} and "redacts" not in new

    def test_v12_create_and_auth_events(self) -> None:
        create = build(
            RoomVersions.V12,
            event_type="m.room.create",
            state_key="",
            content={"room_version": "12"},
            room_id=None,
            prev_events=[],
            auth_events=[],
        )
        assert "room_id" not in create
        create_id, _ = finalise_event(create, RoomVersions.V12, "x", KEY)
        room_id = "!" + create_id[1:]
        member = build(RoomVersions.V12, room_id=room_id, auth_events=[create_id, "$pl"])
        assert member["auth_events"] == ["$pl"]
        with pytest.raises(ValueError, match="no room_id"):
            build(RoomVersions.V12, event_type="m.room.create", state_key="", room_id="!x")
        with pytest.raises(ValueError, match="room_id is required"):
            build(RoomVersions.V11, room_id=None)

    def test_depth_is_clamped(self) -> None:
        assert build(RoomVersions.V6, depth=2**60)["depth"] == 2**53 - 1
        assert build(RoomVersions.V5, depth=2**70)["depth"] == 2**63 - 1
        assert max_depth(RoomVersions.V5) == 2**63 - 1

    def test_v1_keeps_given_event_id(self) -> None:
        event = dict(build(RoomVersions.V1), event_id="$mine:x")
        event_id, pdu = finalise_event(event, RoomVersions.V1, "x", KEY)
        assert event_id == "$mine:x" == pdu["event_id"]
