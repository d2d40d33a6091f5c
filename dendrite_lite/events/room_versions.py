"""Room versions "1" to "12" as feature flags.

Spec: https://spec.matrix.org/latest/rooms/ (one page per version, each a delta of an
earlier one).

Every algorithm in this package (redaction, event IDs, auth rules, state resolution,
canonical JSON strictness) takes a :class:`RoomVersion` and branches on *named flags*
rather than on version numbers, so each behavioural difference is written down exactly
once, here, next to the spec change that introduced it.  Each version is defined as the
previous one plus its delta (``msgspec.structs.replace``), mirroring how the spec pages are
written.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

__all__ = [
    "DEFAULT_ROOM_VERSION",
    "KNOWN_ROOM_VERSIONS",
    "EventFormat",
    "RoomDisposition",
    "RoomVersion",
    "RoomVersions",
    "StateResAlgorithm",
    "get_room_version",
]


class EventFormat(enum.Enum):
    """How event IDs are formed and how ``prev_events``/``auth_events`` are written."""

    #: v1, v2: ``$opaque:server`` IDs chosen by the sender, carried in the event;
    #: references are ``[event_id, {"sha256": ...}]`` pairs.
    V1 = "v1"
    #: v3: ID = ``$`` + standard unpadded base64 of the reference hash; references are IDs.
    V3 = "v3"
    #: v4+: as v3 but URL-safe unpadded base64.
    V4 = "v4"


class StateResAlgorithm(enum.Enum):
    """Which state resolution algorithm the room uses."""

    V1 = "v1"  # room version 1
    V2 = "v2"  # room versions 2-11
    #: v12 (MSC4297 "state resolution v2.1"): first iterative auth pass starts from an empty
    #: state map, and the full conflicted set includes the conflicted state subgraph.
    V2_1 = "v2.1"


class RoomDisposition(enum.Enum):
    """Whether the spec marks a version stable (safe for rooms) or unstable."""

    STABLE = "stable"
    UNSTABLE = "unstable"


class RoomVersion(msgspec.Struct, frozen=True, kw_only=True):
    """The behaviour switches of one room version (see each field's comment for the spec)."""

    identifier: str
    disposition: RoomDisposition = RoomDisposition.STABLE
    event_format: EventFormat = EventFormat.V1
    state_res: StateResAlgorithm = StateResAlgorithm.V1
    #: v1-2: auth rule 11 (redaction needs redact level or same event-ID domain).
    #: From v3 redactions are authorised like any event and checked when applied.
    special_case_redaction_auth: bool = True
    #: v5+: respect ``valid_until_ts`` of signing keys when verifying events.
    enforce_key_validity: bool = False
    #: v1-5: auth rule for ``m.room.aliases`` and its redaction-protected ``aliases`` key.
    special_case_aliases_auth: bool = True
    #: v6+: canonical JSON is enforced on events (no floats, integers within 2**53).
    #: Before v6, floats were tolerated in power levels ("floaty power levels").
    strict_canonicaljson: bool = False
    #: v6+: ``notifications`` in power levels is subject to the power level change rules.
    limit_notifications_power_levels: bool = False
    #: v7+: ``knock`` join rule and membership.
    knock_join_rule: bool = False
    #: v8+: ``restricted`` join rule, ``join_authorised_via_users_server``, and ``allow``
    #: surviving redaction of ``m.room.join_rules``.
    restricted_join_rule: bool = False
    #: v9+: ``join_authorised_via_users_server`` survives redaction of ``m.room.member``.
    restricted_join_rule_fix: bool = False
    #: v10+: ``knock_restricted`` join rule.
    knock_restricted_join_rule: bool = False
    #: v10+: power level values must be JSON integers (no stringy integers).
    enforce_int_power_levels: bool = False
    #: v11+: the creator is the create event's ``sender``; ``content.creator`` is gone.
    implicit_room_creator: bool = False
    #: v11+: redaction keeps less top-level keys and more content keys (see redaction).
    updated_redaction_rules: bool = False
    #: v11+: size limits are enforced on UTF-8 bytes without leniency (v1-10 servers
    #: historically counted codepoints, so byte overruns there are "soft").
    strict_event_byte_limits: bool = False
    #: v12 (MSC4291): room ID = ``!`` + URL-safe hash of the create event; the create event
    #: has no ``room_id`` and is never listed in ``auth_events``.
    room_id_is_create_event_id: bool = False
    #: v12 (MSC4289): the create event's sender and ``additional_creators`` have infinite
    #: power level and may not appear in ``m.room.power_levels``.
    privileged_creators: bool = False

    @property
    def stringy_power_levels(self) -> bool:
        """v1-9: power level values may be strings holding integers."""
        return not self.enforce_int_power_levels

    @property
    def floaty_power_levels(self) -> bool:
        """v1-5: power level values may be floats (truncated towards zero)."""
        return not self.strict_canonicaljson

    @property
    def create_event_requires_creator(self) -> bool:
        """v1-10: ``m.room.create`` must carry ``content.creator``."""
        return not self.implicit_room_creator


_V1: Final = RoomVersion(identifier="1")
_V2: Final = msgspec.structs.replace(_V1, identifier="2", state_res=StateResAlgorithm.V2)
_V3: Final = msgspec.structs.replace(
    _V2, identifier="3", event_format=EventFormat.V3, special_case_redaction_auth=False
)
_V4: Final = msgspec.structs.replace(_V3, identifier="4", event_format=EventFormat.V4)
_V5: Final = msgspec.structs.replace(_V4, identifier="5", enforce_key_validity=True)
_V6: Final = msgspec.structs.replace(
    _V5,
    identifier="6",
    special_case_aliases_auth=False,
    strict_canonicaljson=True,
    limit_notifications_power_levels=True,
)
_V7: Final = msgspec.structs.replace(_V6, identifier="7", knock_join_rule=True)
_V8: Final = msgspec.structs.replace(_V7, identifier="8", restricted_join_rule=True)
_V9: Final = msgspec.structs.replace(_V8, identifier="9", restricted_join_rule_fix=True)
_V10: Final = msgspec.structs.replace(
    _V9, identifier="10", knock_restricted_join_rule=True, enforce_int_power_levels=True
)
_V11: Final = msgspec.structs.replace(
    _V10,
    identifier="11",
    implicit_room_creator=True,
    updated_redaction_rules=True,
    strict_event_byte_limits=True,
)
_V12: Final = msgspec.structs.replace(
    _V11,
    identifier="12",
    state_res=StateResAlgorithm.V2_1,
    room_id_is_create_event_id=True,
    privileged_creators=True,
)


class RoomVersions:
    """Namespace giving each known version a name (``RoomVersions.V12``)."""

    V1: Final = _V1
    V2: Final = _V2
    V3: Final = _V3
    V4: Final = _V4
    V5: Final = _V5
    V6: Final = _V6
    V7: Final = _V7
    V8: Final = _V8
    V9: Final = _V9
    V10: Final = _V10
    V11: Final = _V11
    V12: Final = _V12


#: Every room version this server implements, by identifier (all are "stable" in the spec).
KNOWN_ROOM_VERSIONS: Final[dict[str, RoomVersion]] = {
    v.identifier: v for v in (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12)
}

#: "Servers SHOULD use room version 12 as the default room version when creating new
#: rooms." (https://spec.matrix.org/latest/rooms/#complete-list-of-room-versions)
DEFAULT_ROOM_VERSION: Final = _V12


def get_room_version(identifier: str) -> RoomVersion:
    """Look up a room version, raising ``KeyError`` naming the unknown version."""
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except KeyError:
        raise KeyError(f"unknown room version {identifier!r}") from None
