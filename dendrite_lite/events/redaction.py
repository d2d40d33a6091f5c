"""The redaction algorithm, for every room version.

Spec: https://spec.matrix.org/latest/rooms/v11/#redactions (full algorithm; v1 in
https://spec.matrix.org/latest/rooms/v1/#redactions, with the v6, v8, v9 and v11 deltas).

Redaction is not only what clients see after an ``m.room.redaction``: it defines which
parts of an event are covered by server signatures and the reference hash (and so the
event ID).  Any deviation from the per-version key lists changes hashes and breaks
federation, so the lists below are copied from the spec verbatim and tested per version.

The algorithm strips every top-level key not listed, and every ``content`` key not listed
for the event's type.  That includes ``unsigned``: what a server chooses to put back there
(e.g. ``redacted_because``) is presentation, not part of the algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from dendrite_lite.events.room_versions import RoomVersion

__all__ = ["redact"]

# Top-level keys kept by all room versions (v11 list).
_KEEP_TOP_LEVEL: Final = frozenset(
    {
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
        "auth_events",
        "origin_server_ts",
    }
)
# Kept additionally before v11.
_KEEP_TOP_LEVEL_PRE_V11: Final = _KEEP_TOP_LEVEL | {"prev_state", "origin", "membership"}

_POWER_LEVEL_KEYS: Final = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)


def _content_keys(event_type: object, room_version: RoomVersion) -> tuple[str, ...]:
    """The ``content`` keys that survive redaction (excluding the special cases)."""
    if event_type == "m.room.member":
        if room_version.restricted_join_rule_fix:
            return ("membership", "join_authorised_via_users_server")
        return ("membership",)
    if event_type == "m.room.create":
        return ("creator",)  # v11+ handled by the caller (keeps everything)
    if event_type == "m.room.join_rules":
        if room_version.restricted_join_rule:
            return ("join_rule", "allow")
        return ("join_rule",)
    if event_type == "m.room.power_levels":
        if room_version.updated_redaction_rules:
            return (*_POWER_LEVEL_KEYS, "invite")
        return _POWER_LEVEL_KEYS
    if event_type == "m.room.aliases" and room_version.special_case_aliases_auth:
        return ("aliases",)
    if event_type == "m.room.history_visibility":
        return ("history_visibility",)
    if event_type == "m.room.redaction" and room_version.updated_redaction_rules:
        return ("redacts",)
    return ()


def _redact_content(
    event_type: object, content: Mapping[str, Any], room_version: RoomVersion
) -> dict[str, Any]:
    if event_type == "m.room.create" and room_version.updated_redaction_rules:
        # v11+: "m.room.create allows all keys."
        return dict(content)
    kept = {k: content[k] for k in _content_keys(event_type, room_version) if k in content}
    if event_type == "m.room.member" and room_version.updated_redaction_rules:
        # v11+: "it allows the `signed` key of the `third_party_invite` key."  As in the
        # reference implementation (Synapse), an object-valued third_party_invite is kept
        # with only its ``signed`` member (possibly empty); a non-object value is dropped.
        third_party_invite = content.get("third_party_invite")
        if isinstance(third_party_invite, Mapping):
            kept["third_party_invite"] = (
                {"signed": third_party_invite["signed"]} if "signed" in third_party_invite else {}
            )
    return kept


def redact(event: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """Return the redacted copy of ``event`` (a PDU dict) for ``room_version``.

    The input is not modified.  Retained values are shared, not deep-copied; callers that
    mutate the result's nested values must copy them first.  ``content`` is always present
    in the output (empty if the input had none or it was not an object).
    """
    keep = _KEEP_TOP_LEVEL if room_version.updated_redaction_rules else _KEEP_TOP_LEVEL_PRE_V11
    redacted = {k: v for k, v in event.items() if k in keep}
    content = event.get("content")
    event_type = event.get("type")
    redacted["content"] = (
        _redact_content(event_type, content, room_version) if isinstance(content, Mapping) else {}
    )
    return redacted
