"""Content hashes, reference hashes, event IDs and hash-derived room IDs.

Spec:
* content hash: https://spec.matrix.org/latest/server-server-api/#calculating-the-content-hash-for-an-event
* reference hash: https://spec.matrix.org/latest/server-server-api/#calculating-the-reference-hash-for-an-event
* event IDs: https://spec.matrix.org/latest/rooms/v1/#event-ids (v1, v2),
  https://spec.matrix.org/latest/rooms/v3/#event-ids (v3),
  https://spec.matrix.org/latest/rooms/v4/#event-ids (v4 and later)
* room IDs in v12: https://spec.matrix.org/latest/appendices/#room-ids

The *content hash* covers the whole event (minus ``unsigned``, ``signatures`` and the hash
itself) and lets receivers detect that an event was redacted in transit.  The *reference
hash* covers only the redacted event, so it is stable under redaction; from room version 3
it *is* the event ID.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping
from typing import Any, Final

from dendrite_lite.events.canonical_json import encode_canonical_json
from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import EventFormat, RoomVersion
from dendrite_lite.events.signing import decode_base64, encode_base64

__all__ = [
    "ContentHashError",
    "add_content_hash",
    "check_content_hash",
    "compute_content_hash",
    "compute_event_id",
    "compute_reference_hash",
    "create_event_id_for_room_id",
    "generate_v1_event_id",
    "room_id_from_create_event_id",
]

_V1_ID_ALPHABET: Final = string.ascii_letters + string.digits


class ContentHashError(ValueError):
    """The event's ``hashes.sha256`` is missing, malformed or does not match."""


def compute_content_hash(event: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """SHA-256 over the canonical event without ``unsigned``, ``signatures``, ``hashes``."""
    hashed = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(
        encode_canonical_json(hashed, strict=room_version.strict_canonicaljson)
    ).digest()


def add_content_hash(event: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """Return a copy of ``event`` with ``hashes: {"sha256": <unpadded base64>}`` set."""
    result = dict(event)
    result["hashes"] = {"sha256": encode_base64(compute_content_hash(event, room_version))}
    return result


def check_content_hash(event: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Raise :class:`ContentHashError` unless ``hashes.sha256`` matches the event.

    On failure the spec says the receiver must continue with the *redacted* event (the
    sender, or someone on the way, may legitimately have redacted it).
    """
    hashes = event.get("hashes")
    claimed = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    if not isinstance(claimed, str):
        raise ContentHashError("event has no sha256 content hash")
    try:
        claimed_bytes = decode_base64(claimed)
    except ValueError as exc:
        raise ContentHashError("content hash is not valid base64") from exc
    if not hmac.compare_digest(claimed_bytes, compute_content_hash(event, room_version)):
        raise ContentHashError("content hash does not match the event")


def compute_reference_hash(event: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """SHA-256 over the canonical redacted event without ``signatures`` and ``unsigned``.

    ``event`` must be in federation format: in room versions 3+ that means *without* an
    ``event_id`` key (the redaction algorithm keeps ``event_id``, so a locally annotated
    copy would hash differently; the spec hashes exactly what was sent).
    """
    redacted = redact(event, room_version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(
        encode_canonical_json(redacted, strict=room_version.strict_canonicaljson)
    ).digest()


def compute_event_id(event: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The event ID of a (hashed and signed) event in a v3+ room.

    v3: ``$`` + standard unpadded base64 of the reference hash; v4+: URL-safe.  For v1/v2
    the ID is not derived from the content: it is read from the event's ``event_id``
    (``ValueError`` if absent); use :func:`generate_v1_event_id` to mint one.
    """
    if room_version.event_format is EventFormat.V1:
        event_id = event.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError("v1/v2 events carry their event_id, and this one has none")
        return event_id
    urlsafe = room_version.event_format is EventFormat.V4
    return "$" + encode_base64(compute_reference_hash(event, room_version), urlsafe=urlsafe)


def generate_v1_event_id(server_name: str) -> str:
    """A fresh ``$<random>:<server_name>`` event ID for room versions 1 and 2."""
    localpart = "".join(secrets.choice(_V1_ID_ALPHABET) for _ in range(18))
    return f"${localpart}:{server_name}"


def room_id_from_create_event_id(create_event_id: str) -> str:
    """v12: the room ID is the create event's ID with the sigil ``!`` instead of ``$``."""
    if not create_event_id.startswith("$"):
        raise ValueError(f"not an event ID: {create_event_id!r}")
    return "!" + create_event_id[1:]


def create_event_id_for_room_id(room_id: str) -> str:
    """v12: the ID of the create event a room ID was derived from."""
    if not room_id.startswith("!"):
        raise ValueError(f"not a room ID: {room_id!r}")
    return "$" + room_id[1:]
