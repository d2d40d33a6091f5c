"""PDUs: a typed read-only view for the auth rules, size limits, and building new events.

Spec:
* PDU formats: https://spec.matrix.org/latest/rooms/v1/#event-format,
  https://spec.matrix.org/latest/rooms/v3/#event-format, https://spec.matrix.org/latest/rooms/v11/#event-format,
  https://spec.matrix.org/latest/rooms/v12/#event-format
* size limits: https://spec.matrix.org/latest/client-server-api/#size-limits
* hashing and signing outgoing events:
  https://spec.matrix.org/latest/server-server-api/#adding-hashes-and-signatures-to-outgoing-events

Events travel and are stored as plain JSON dicts (that is what gets hashed and signed).
:class:`Pdu` is the small, immutable, typed projection of such a dict that authorisation
and state resolution work on; it smooths over the per-version differences (``[id, hash]``
reference pairs in v1/v2, ``redacts`` moving into ``content`` in v11, the create event
having no ``room_id`` in v12) so that those algorithms need not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from dendrite_lite.events.canonical_json import encode_canonical_json
from dendrite_lite.events.event_signing import sign_event
from dendrite_lite.events.hashes import (
    add_content_hash,
    compute_event_id,
    create_event_id_for_room_id,
    generate_v1_event_id,
)
from dendrite_lite.events.room_versions import EventFormat, RoomVersion
from dendrite_lite.events.signing import ServerSigningKey

__all__ = [
    "MAX_ID_BYTES",
    "MAX_PDU_SIZE",
    "EventSizeError",
    "Pdu",
    "PduFormatError",
    "StateKey",
    "build_event",
    "check_size_limits",
    "finalise_event",
    "max_depth",
]

#: "The complete event MUST NOT be larger than 65536 bytes" (canonical JSON, with signatures).
MAX_PDU_SIZE: Final = 65536
#: Limit for ``sender``, ``room_id``, ``state_key``, ``type`` and ``event_id``.
MAX_ID_BYTES: Final = 255

#: A state map key: ``(event type, state key)``.
StateKey = tuple[str, str]


class PduFormatError(ValueError):
    """The dict is not a PDU of the expected room version (drop it, do not store it)."""


class EventSizeError(ValueError):
    """A size limit is exceeded.

    ``soft`` is True when the overrun is only in UTF-8 *bytes* (not codepoints) of a key in a
    room version before 11: servers historically counted codepoints there, so such events
    exist in real rooms and must be stored as rejected rather than dropped.
    """

    def __init__(self, field: str, size: int, limit: int, *, soft: bool = False) -> None:
        self.field = field
        self.size = size
        self.limit = limit
        self.soft = soft
        super().__init__(f"{field} is {size} bytes, limit is {limit}")


def max_depth(room_version: RoomVersion) -> int:
    """The largest legal ``depth`` (2**63-1, or 2**53-1 once canonical JSON is enforced)."""
    return 2**53 - 1 if room_version.strict_canonicaljson else 2**63 - 1


def _references(value: object, room_version: RoomVersion, field: str) -> tuple[str, ...]:
    """Normalise ``prev_events``/``auth_events`` to a tuple of event IDs."""
    if not isinstance(value, list | tuple):
        raise PduFormatError(f"{field} must be a list")
    ids: list[str] = []
    for item in value:
        if room_version.event_format is EventFormat.V1:
            # [event_id, {"sha256": ...}] pairs
            if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise PduFormatError(f"{field} entries must be [event_id, hashes] pairs")
            ids.append(item[0])
        else:
            if not isinstance(item, str):
                raise PduFormatError(f"{field} entries must be event IDs")
            ids.append(item)
    return tuple(ids)


def _strict_int(value: object, field: str) -> int:
    if type(value) is not int:
        raise PduFormatError(f"{field} must be an integer")
    return value


class Pdu(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a PDU that authorisation and state resolution need.

    Build with :meth:`from_dict`.  ``content`` and ``signatures`` are the event's own
    objects (shared, not copied): treat them as read-only.
    """

    event_id: str
    #: As sent; ``None`` only for a v12 ``m.room.create`` (see :attr:`effective_room_id`).
    room_id: str | None
    sender: str
    type: str
    state_key: str | None
    content: dict[str, Any]
    prev_events: tuple[str, ...]
    auth_events: tuple[str, ...]
    depth: int
    origin_server_ts: int
    #: Target of an ``m.room.redaction`` (top-level before v11, ``content.redacts`` after).
    redacts: str | None = None
    signatures: dict[str, Any] = msgspec.field(default_factory=dict)

    @classmethod
    def from_dict(
        cls, event: Mapping[str, Any], room_version: RoomVersion, *, event_id: str | None = None
    ) -> Pdu:
        """Parse a federation-format event dict.

        ``event_id`` may be supplied when already known (it is otherwise read from the
        event in v1/v2, or computed from the reference hash in v3+, which costs a redaction
        and a SHA-256).  Raises :class:`PduFormatError` if required fields are missing or of
        the wrong JSON type; unknown extra keys and odd ``content`` are tolerated (the auth
        rules deal with content).
        """
        for name in ("type", "sender"):
            if not isinstance(event.get(name), str):
                raise PduFormatError(f"{name} must be a string")
        content = event.get("content")
        if not isinstance(content, dict):
            raise PduFormatError("content must be an object")
        state_key = event.get("state_key")
        if state_key is not None and not isinstance(state_key, str):
            raise PduFormatError("state_key must be a string")
        room_id = event.get("room_id")
        if room_id is not None and not isinstance(room_id, str):
            raise PduFormatError("room_id must be a string")
        is_create = event["type"] == "m.room.create" and state_key == ""
        if room_id is None and not (room_version.room_id_is_create_event_id and is_create):
            raise PduFormatError("room_id is required")
        if event_id is None:
            try:
                event_id = compute_event_id(event, room_version)
            except ValueError as exc:
                raise PduFormatError(str(exc)) from exc
        if room_version.updated_redaction_rules:
            redacts = content.get("redacts")
        else:
            redacts = event.get("redacts")
        signatures = event.get("signatures")
        return cls(
            event_id=event_id,
            room_id=room_id,
            sender=event["sender"],
            type=event["type"],
            state_key=state_key,
            content=content,
            prev_events=_references(event.get("prev_events"), room_version, "prev_events"),
            auth_events=_references(event.get("auth_events"), room_version, "auth_events"),
            depth=_strict_int(event.get("depth"), "depth"),
            origin_server_ts=_strict_int(event.get("origin_server_ts"), "origin_server_ts"),
            redacts=redacts if isinstance(redacts, str) else None,
            signatures=signatures if isinstance(signatures, dict) else {},
        )

    @property
    def is_state(self) -> bool:
        """State events are exactly those with a ``state_key`` (possibly empty)."""
        return self.state_key is not None

    @property
    def state_map_key(self) -> StateKey:
        """``(type, state_key)``; raises ``ValueError`` for non-state events."""
        if self.state_key is None:
            raise ValueError(f"{self.event_id} is not a state event")
        return (self.type, self.state_key)

    @property
    def membership(self) -> str | None:
        """``content.membership`` if it is a string."""
        value = self.content.get("membership")
        return value if isinstance(value, str) else None

    @property
    def effective_room_id(self) -> str:
        """The room the event belongs to, also for a v12 create event (derived from its ID)."""
        if self.room_id is not None:
            return self.room_id
        return "!" + self.event_id[1:]


def _check_id_size(field: str, value: str, room_version: RoomVersion) -> None:
    if len(value) > MAX_ID_BYTES:
        raise EventSizeError(field, len(value.encode("utf-8")), MAX_ID_BYTES)
    size = len(value.encode("utf-8"))
    if size > MAX_ID_BYTES:
        raise EventSizeError(
            field, size, MAX_ID_BYTES, soft=not room_version.strict_event_byte_limits
        )


def check_size_limits(
    event: Mapping[str, Any], room_version: RoomVersion, *, event_id: str | None = None
) -> None:
    """Enforce the PDU size limits, raising :class:`EventSizeError`.

    The whole event, as canonical JSON including signatures, must be at most 65536 bytes;
    ``sender``, ``room_id``, ``state_key``, ``type`` and the event ID at most 255 bytes each.
    For v3+ the event ID is not part of the event; pass it as ``event_id`` to check it too.
    """
    size = len(encode_canonical_json(event, strict=room_version.strict_canonicaljson))
    if size > MAX_PDU_SIZE:
        raise EventSizeError("event", size, MAX_PDU_SIZE)
    for field in ("sender", "room_id", "state_key", "type", "event_id"):
        value = event.get(field)
        if isinstance(value, str):
            _check_id_size(field, value, room_version)
    if event_id is not None:
        _check_id_size("event_id", event_id, room_version)


def build_event(
    room_version: RoomVersion,
    *,
    event_type: str,
    sender: str,
    content: Mapping[str, Any],
    room_id: str | None,
    prev_events: Sequence[str],
    auth_events: Sequence[str],
    depth: int,
    origin_server_ts: int,
    state_key: str | None = None,
    redacts: str | None = None,
    reference_hashes: Mapping[str, str] | None = None,
    unsigned: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble an unhashed, unsigned PDU dict in ``room_version``'s format.

    * v1/v2 reference other events as ``[event_id, {"sha256": <reference hash>}]``; the
      hashes are taken from ``reference_hashes`` (event ID -> unpadded base64) when known,
      otherwise ``{}`` (receivers do not check them).  v3+ use bare IDs.
    * ``redacts`` is written top-level before v11 and into ``content`` from v11 on.
    * v12: a create event gets no ``room_id``; other events never list the create event in
      ``auth_events`` (it is implied by the room ID), so it is dropped if present.
    * ``depth`` is clamped to :func:`max_depth`.

    Pass the result to :func:`finalise_event`.
    """
    is_create = event_type == "m.room.create" and state_key == ""
    content = dict(content)
    if redacts is not None and room_version.updated_redaction_rules:
        content["redacts"] = redacts
    event: dict[str, Any] = {
        "type": event_type,
        "sender": sender,
        "content": content,
        "depth": min(depth, max_depth(room_version)),
        "origin_server_ts": origin_server_ts,
    }
    if state_key is not None:
        event["state_key"] = state_key
    if redacts is not None and not room_version.updated_redaction_rules:
        event["redacts"] = redacts
    if room_version.room_id_is_create_event_id and is_create:
        if room_id is not None:
            raise ValueError("v12 create events have no room_id")
    elif room_id is None:
        raise ValueError("room_id is required")
    else:
        event["room_id"] = room_id
        if room_version.room_id_is_create_event_id:
            create_id = create_event_id_for_room_id(room_id)
            auth_events = [e for e in auth_events if e != create_id]
    if room_version.event_format is EventFormat.V1:
        hashes = reference_hashes or {}

        def pair(event_id: str) -> list[Any]:
            return [event_id, {"sha256": hashes[event_id]} if event_id in hashes else {}]

        event["prev_events"] = [pair(e) for e in prev_events]
        event["auth_events"] = [pair(e) for e in auth_events]
    else:
        event["prev_events"] = list(prev_events)
        event["auth_events"] = list(auth_events)
    if unsigned:
        event["unsigned"] = dict(unsigned)
    return event


def finalise_event(
    event: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    signing_key: ServerSigningKey,
) -> tuple[str, dict[str, Any]]:
    """Hash, sign and identify an event built by :func:`build_event`.

    Returns ``(event_id, pdu)``.  v1/v2: an ``event_id`` on ``server_name`` is generated
    (unless present) and is part of the signed event.  v3+: the ID is the reference hash of
    the signed event.  For a v12 create event the room ID is
    ``room_id_from_create_event_id(event_id)``.
    """
    pdu = dict(event)
    if room_version.event_format is EventFormat.V1 and "event_id" not in pdu:
        pdu["event_id"] = generate_v1_event_id(server_name)
    pdu = add_content_hash(pdu, room_version)
    pdu = sign_event(pdu, room_version, server_name, signing_key)
    return compute_event_id(pdu, room_version), pdu
