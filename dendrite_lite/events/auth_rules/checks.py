"""The top of the authorisation rules: create events, auth event selection, dispatch.

Spec: https://spec.matrix.org/latest/rooms/v12/#authorization-rules (and each version's
page), https://spec.matrix.org/latest/server-server-api/#auth-events-selection,
https://spec.matrix.org/latest/rooms/v3/#handling-redactions.  The rule numbers used in
messages and comments are the v12 ones; the package docstring maps them to older versions.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import Any

from dendrite_lite.events.auth_rules.common import (
    CREATE_KEY,
    JOIN_RULES_KEY,
    POWER_LEVELS_KEY,
    AuthError,
    AuthState,
    membership_of,
)
from dendrite_lite.events.auth_rules.membership import SignatureChecker, check_membership
from dendrite_lite.events.auth_rules.power_levels import (
    check_power_levels_change,
    named_level,
    required_power_level,
    user_power_level,
)
from dendrite_lite.events.identifiers import get_domain, is_valid_user_id
from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

__all__ = [
    "auth_types_for",
    "auth_types_for_event",
    "check_auth",
    "check_auth_against_auth_events",
    "check_auth_events",
    "check_create_event",
    "select_auth_event_ids",
    "should_apply_redaction",
]


def _domain(identifier: object) -> str | None:
    if not isinstance(identifier, str):
        return None
    try:
        return get_domain(identifier)
    except ValueError:
        return None


def auth_types_for_event(room_version: RoomVersion, event: Pdu) -> set[StateKey]:
    """The state keys an event's ``auth_events`` are selected from ("auth events selection").

    Empty for the create event.  Otherwise the create event (not in v12, where the room ID
    implies it), the power levels, the sender's membership and, for membership events, the
    target's membership, the join rules (join/invite/knock), the third-party invite named
    by an invite's ``third_party_invite.signed.token``, and (restricted-join versions) the
    membership of a join's ``join_authorised_via_users_server``.  Malformed content adds
    nothing rather than failing: the auth rules reject such events themselves.
    """
    return auth_types_for(room_version, event.type, event.sender, event.state_key, event.content)


def auth_types_for(
    room_version: RoomVersion,
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
) -> set[StateKey]:
    """:func:`auth_types_for_event` for an event that does not exist yet."""
    if event_type == "m.room.create":
        return set()
    keys: set[StateKey] = {POWER_LEVELS_KEY, ("m.room.member", sender)}
    if not room_version.room_id_is_create_event_id:
        keys.add(CREATE_KEY)
    if event_type == "m.room.member":
        membership = content.get("membership")
        if state_key is not None:
            keys.add(("m.room.member", state_key))
        if membership in ("join", "invite", "knock"):
            keys.add(JOIN_RULES_KEY)
        if membership == "invite":
            third_party_invite = content.get("third_party_invite")
            if isinstance(third_party_invite, Mapping):
                signed = third_party_invite.get("signed")
                token = signed.get("token") if isinstance(signed, Mapping) else None
                if isinstance(token, str):
                    keys.add(("m.room.third_party_invite", token))
        authoriser = content.get("join_authorised_via_users_server")
        restricted = room_version.restricted_join_rule
        if restricted and membership == "join" and isinstance(authoriser, str):
            keys.add(("m.room.member", authoriser))
    return keys


def select_auth_event_ids(
    room_version: RoomVersion,
    state: Mapping[StateKey, str],
    *,
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
) -> list[str]:
    """The ``auth_events`` for a new event, picked from ``state`` (``key -> event ID``,
    normally the current state), in a deterministic order."""
    keys = auth_types_for(room_version, event_type, sender, state_key, content)
    return [state[key] for key in sorted(keys) if key in state]


def check_create_event(room_version: RoomVersion, event: Pdu) -> None:
    """Rule 1: the ``m.room.create`` event.  Raises :class:`AuthError`."""
    if event.prev_events:
        raise AuthError("create event has prev_events")  # 1.1
    if room_version.room_id_is_create_event_id:
        if event.room_id is not None:
            raise AuthError("create event must not have a room_id")  # 1.2 (v12)
    else:
        room_domain = _domain(event.room_id)
        if room_domain is None or room_domain != _domain(event.sender):
            raise AuthError("room_id domain does not match sender's domain")  # 1.2
    if "room_version" in event.content:  # 1.3 ("1" if absent)
        claimed = event.content["room_version"]
        if not isinstance(claimed, str) or claimed not in KNOWN_ROOM_VERSIONS:
            raise AuthError(f"unknown room version {claimed!r}")
    if room_version.create_event_requires_creator and "creator" not in event.content:
        raise AuthError("create event has no creator")  # 1.4 (v1-10)
    if room_version.privileged_creators and "additional_creators" in event.content:  # 1.4 (v12)
        additional = event.content["additional_creators"]
        if not isinstance(additional, list) or not all(
            isinstance(u, str) and is_valid_user_id(u) for u in additional
        ):
            raise AuthError("additional_creators must be a list of user IDs")


def _create_event(event: Pdu, state: AuthState) -> Pdu:
    """The room's create event from ``state``.

    Also rule 2 (v12: the ``room_id`` is the create event's ID with ``!`` for ``$``), which
    before v12 becomes the equivalent "the create event is from this room" (rule 3.5).
    """
    create = state.get(CREATE_KEY)
    if create is None:
        raise AuthError("no m.room.create event in the room state")
    if event.room_id is None or event.room_id != create.effective_room_id:
        raise AuthError("room_id is not the ID of the room's create event")
    return create


def check_auth(
    room_version: RoomVersion,
    event: Pdu,
    state: AuthState,
    *,
    is_signed_by: SignatureChecker | None = None,
) -> None:
    """Check ``event`` against the authorisation rules given ``state``; raise if rejected.

    ``state`` maps ``(type, state_key)`` to events and must contain at least the entries of
    :func:`auth_types_for_event` that exist, plus the create event.  It is either built from
    the event's own auth events (receipt check 4), or is the room state before the event
    (check 5) or current state (soft-failure check 6), or the partial state during state
    resolution.  Rule 3 (the *choice* of auth events) is checked separately by
    :func:`check_auth_events`, as it only applies to the first of these.

    ``is_signed_by`` customises rule 5.2 (see
    :func:`~dendrite_lite.events.auth_rules.membership.check_membership`).
    """
    if event.type == "m.room.create":
        check_create_event(room_version, event)
        return
    create = _create_event(event, state)
    # Rule 4: m.federate
    if create.content.get("m.federate", True) is False and _domain(event.sender) != _domain(
        create.sender
    ):
        raise AuthError("room does not federate with the sender's server")
    if room_version.special_case_aliases_auth and event.type == "m.room.aliases":
        # v1-5 rule 4: aliases are owned by the server named in the state key.
        if event.state_key is None:
            raise AuthError("m.room.aliases without state_key")
        if event.state_key != _domain(event.sender):
            raise AuthError("m.room.aliases state_key is not the sender's domain")
        return
    if event.type == "m.room.member":
        check_membership(event, state, room_version, is_signed_by=is_signed_by)  # rule 5
        return
    if membership_of(state, event.sender) != "join":
        raise AuthError("sender is not joined to the room")  # rule 6
    sender_level = user_power_level(state, event.sender, room_version)
    if event.type == "m.room.third_party_invite":  # rule 7
        if sender_level >= named_level(state, "invite", room_version):
            return
        raise AuthError("sender's power level is below the invite level")
    if required_power_level(state, event, room_version) > sender_level:
        raise AuthError(f"sender's power level is too low to send {event.type}")  # rule 8
    state_key = event.state_key
    if state_key is not None and state_key.startswith("@") and state_key != event.sender:
        raise AuthError("state_key starting with @ must be the sender")  # rule 9
    if event.type == "m.room.power_levels":
        check_power_levels_change(event, state, room_version)  # rule 10
    if room_version.special_case_redaction_auth and event.type == "m.room.redaction":
        # v1-2 rule 11
        if sender_level >= named_level(state, "redact", room_version):
            return
        target_domain = _domain(event.redacts)
        if target_domain is None or target_domain != _domain(event.event_id):
            raise AuthError("cannot redact events from other servers without redact level")


def check_auth_events(
    room_version: RoomVersion,
    event: Pdu,
    auth_events: Iterable[Pdu],
    *,
    rejected: Container[str] = (),
) -> dict[StateKey, Pdu]:
    """Rule 3: are ``event``'s ``auth_events`` a valid selection?  Returns them as a state map.

    ``auth_events`` are the events named in ``event.auth_events`` (every one of them must
    be supplied).  Rejects duplicates per ``(type, state_key)``, entries outside
    :func:`auth_types_for_event` (so in v12 the create event), rejected entries, entries from
    another room, and (v1-11) a missing create event.  Not applicable to create events.
    """
    by_id = {e.event_id: e for e in auth_events}
    missing = [e for e in event.auth_events if e not in by_id]
    if missing:
        raise AuthError(f"auth events not supplied: {missing}")
    allowed = auth_types_for_event(room_version, event)
    result: dict[StateKey, Pdu] = {}
    for event_id in event.auth_events:
        auth_event = by_id[event_id]
        key = (auth_event.type, auth_event.state_key)
        if auth_event.state_key is None or key not in allowed:
            raise AuthError(f"unexpected auth event {event_id} of type {key}")
        state_key = (auth_event.type, auth_event.state_key)
        if state_key in result:
            raise AuthError(f"duplicate auth events for {state_key}")
        if event_id in rejected:
            raise AuthError(f"auth event {event_id} was rejected")
        if auth_event.effective_room_id != event.room_id:
            raise AuthError(f"auth event {event_id} is from another room")
        result[state_key] = auth_event
    if not room_version.room_id_is_create_event_id and CREATE_KEY not in result:
        raise AuthError("auth events do not include the create event")
    return result


def check_auth_against_auth_events(
    room_version: RoomVersion,
    event: Pdu,
    auth_events: Iterable[Pdu],
    *,
    create_event: Pdu | None = None,
    rejected: Container[str] = (),
    is_signed_by: SignatureChecker | None = None,
) -> None:
    """Receipt check 4: authorise ``event`` against its own auth events (rules 1-11).

    For v12 pass the room's (accepted) ``create_event``, which is not an auth event.
    """
    if event.type == "m.room.create":
        check_create_event(room_version, event)
        return
    state = check_auth_events(room_version, event, auth_events, rejected=rejected)
    if room_version.room_id_is_create_event_id:
        if create_event is None or create_event.event_id in rejected:
            raise AuthError("the room's create event is unknown or rejected")
        state[CREATE_KEY] = create_event
    check_auth(room_version, event, state, is_signed_by=is_signed_by)


def should_apply_redaction(
    room_version: RoomVersion, redaction: Pdu, target: Pdu, state: AuthState
) -> bool:
    """Whether an (authorised) redaction may actually redact ``target`` ("Handling redactions").

    Both events must be in the same room.  From v3: the redaction's sender has at least the
    *redact level* in ``state`` (the state at the redaction), or both senders are on the
    same server.  v1-2 decided this in auth rule 11 (redact level, or same server in the
    event IDs); the same condition is applied here.
    """
    if redaction.effective_room_id != target.effective_room_id:
        return False
    if user_power_level(state, redaction.sender, room_version) >= named_level(
        state, "redact", room_version
    ):
        return True
    if room_version.special_case_redaction_auth:
        redaction_domain = _domain(redaction.event_id)
        return redaction_domain is not None and redaction_domain == _domain(target.event_id)
    sender_domain = _domain(redaction.sender)
    return sender_domain is not None and sender_domain == _domain(target.sender)
