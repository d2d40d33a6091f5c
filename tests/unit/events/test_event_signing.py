"""Event signatures (appendix vectors) and who must sign an event."""

from __future__ import annotations

import pytest

from dendrite_lite.events.event_signing import (
    required_signature_servers,
    sign_event,
    verify_event_signature,
)
from dendrite_lite.events.hashes import add_content_hash
from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import RoomVersions
from dendrite_lite.events.signing import ServerSigningKey, SignatureVerifyError, decode_base64

SPEC_KEY = ServerSigningKey.from_seed(
    decode_base64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"), "1"
)


def test_spec_minimal_event_vector() -> None:
    event = {
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
    signed = sign_event(
        add_content_hash(event, RoomVersions.V1), RoomVersions.V1, "domain", SPEC_KEY
    )
    assert signed == {
        "auth_events": [],
        "content": {},
        "depth": 3,
        "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
        "origin": "domain",
        "origin_server_ts": 1000000,
        "prev_events": [],
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "signatures": {
            "domain": {
                "ed25519:1": (
                    "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTR"
                    "l16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
                ),
            }
        },
        "type": "X",
        "unsigned": {"age_ts": 1000000},
    }


def test_spec_redactable_event_vector() -> None:
    event = {
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
    signed = sign_event(
        add_content_hash(event, RoomVersions.V1), RoomVersions.V1, "domain", SPEC_KEY
    )
    assert signed["hashes"] == {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"}
    assert signed["signatures"] == {
        "domain": {
            "ed25519:1": (
                "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu"
                "6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
            ),
        }
    }
    # The signature covers the redacted form, so it verifies on both copies.
    verify_event_signature(signed, RoomVersions.V1, "domain", "ed25519:1", SPEC_KEY.verify_key)
    redacted = redact(signed, RoomVersions.V1)
    verify_event_signature(redacted, RoomVersions.V1, "domain", "ed25519:1", SPEC_KEY.verify_key)
    tampered = dict(signed, origin_server_ts=1)
    with pytest.raises(SignatureVerifyError):
        verify_event_signature(
            tampered, RoomVersions.V1, "domain", "ed25519:1", SPEC_KEY.verify_key
        )


def test_signatures_accumulate() -> None:
    other = ServerSigningKey.generate("o")
    event = add_content_hash({"type": "X", "content": {}, "sender": "@a:a"}, RoomVersions.V10)
    signed = sign_event(
        sign_event(event, RoomVersions.V10, "a", SPEC_KEY), RoomVersions.V10, "b", other
    )
    assert set(signed["signatures"]) == {"a", "b"}
    verify_event_signature(signed, RoomVersions.V10, "a", "ed25519:1", SPEC_KEY.verify_key)
    verify_event_signature(signed, RoomVersions.V10, "b", other.key_id, other.verify_key)


class TestRequiredSignatureServers:
    def test_sender(self) -> None:
        event = {"type": "m.room.message", "sender": "@a:one.org", "content": {}}
        assert required_signature_servers(event, RoomVersions.V10) == {"one.org"}

    def test_v1_event_id_domain(self) -> None:
        event = {"type": "m.room.message", "sender": "@a:one.org", "event_id": "$e:two.org"}
        assert required_signature_servers(event, RoomVersions.V2) == {"one.org", "two.org"}
        assert required_signature_servers(event, RoomVersions.V3) == {"one.org"}
        assert required_signature_servers(event, RoomVersions.V1, event_id="$f:three.org") == {
            "one.org",
            "three.org",
        }

    def test_third_party_invite_exempts_sender(self) -> None:
        event = {
            "type": "m.room.member",
            "sender": "@a:one.org",
            "content": {"membership": "invite", "third_party_invite": {}},
        }
        assert required_signature_servers(event, RoomVersions.V10) == set()

    def test_restricted_join_authoriser(self) -> None:
        event = {
            "type": "m.room.member",
            "sender": "@a:one.org",
            "content": {"membership": "join", "join_authorised_via_users_server": "@b:two.org"},
        }
        assert required_signature_servers(event, RoomVersions.V8) == {"one.org", "two.org"}
        assert required_signature_servers(event, RoomVersions.V7) == {"one.org"}

    def test_missing_domain(self) -> None:
        with pytest.raises(ValueError):
            required_signature_servers({"sender": "nodomain"}, RoomVersions.V10)
