"""Shared vocabulary of the auth rules: the error type, state lookups, room creators.

Spec: https://spec.matrix.org/latest/server-server-api/#definitions and the "room
creators" note of https://spec.matrix.org/latest/rooms/v12/#authorization-rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import RoomVersion

__all__ = [
    "CREATE_KEY",
    "JOIN_RULES_KEY",
    "POWER_LEVELS_KEY",
    "AuthError",
    "AuthState",
    "creators",
    "join_rule",
    "membership_of",
]

CREATE_KEY: Final[StateKey] = ("m.room.create", "")
POWER_LEVELS_KEY: Final[StateKey] = ("m.room.power_levels", "")
JOIN_RULES_KEY: Final[StateKey] = ("m.room.join_rules", "")

#: The room state an event is authorised against: ``(type, state_key) -> event``.  It only
#: needs the keys listed by :func:`~dendrite_lite.events.auth_rules.auth_types_for_event`
#: plus the create event (which in v12 is not an auth event but is still room state).
AuthState = Mapping[StateKey, Pdu]


class AuthError(Exception):
    """The event is not allowed by the authorisation rules; ``reason`` says which rule."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def membership_of(state: AuthState, user_id: str) -> str | None:
    """The user's current membership (``join``, ``ban``...), or None if they have none."""
    member = state.get(("m.room.member", user_id))
    return member.membership if member is not None else None


def join_rule(state: AuthState) -> object:
    """``content.join_rule`` of the current join rules.

    A room without an ``m.room.join_rules`` event (or one without ``join_rule``) behaves as
    ``invite``, as in the reference implementations; the value is returned unvalidated
    (callers compare it against known strings, so junk matches no rule).
    """
    event = state.get(JOIN_RULES_KEY)
    if event is None:
        return "invite"
    return event.content.get("join_rule", "invite")


def creators(create: Pdu, room_version: RoomVersion) -> frozenset[str]:
    """The room creator(s) named by the create event.

    * v1-10: ``content.creator`` (absent or non-string: nobody);
    * v11: the create event's ``sender``;
    * v12: the ``sender`` plus every string in ``content.additional_creators``.
    """
    if not room_version.implicit_room_creator:
        creator = create.content.get("creator")
        return frozenset((creator,)) if isinstance(creator, str) else frozenset()
    result = {create.sender}
    if room_version.privileged_creators:
        additional = create.content.get("additional_creators")
        if isinstance(additional, list):
            result.update(c for c in additional if isinstance(c, str))
    return frozenset(result)
