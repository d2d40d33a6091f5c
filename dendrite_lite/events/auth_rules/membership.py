"""Auth rule 5 (v12 numbering): ``m.room.member`` events, including third-party invites.

Spec: rule 5 of https://spec.matrix.org/latest/rooms/v12/#authorization-rules (rule 4 in
v6-v11, rule 5 in v1-v5); the knock (v7), restricted (v8) and knock_restricted (v10)
additions; third-party invites: https://spec.matrix.org/latest/server-server-api/#third-party-invites
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dendrite_lite.events.auth_rules.common import (
    CREATE_KEY,
    AuthError,
    AuthState,
    join_rule,
    membership_of,
)
from dendrite_lite.events.auth_rules.power_levels import named_level, user_power_level
from dendrite_lite.events.identifiers import get_domain
from dendrite_lite.events.pdu import Pdu
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.events.signing import (
    ED25519,
    SignatureVerifyError,
    decode_verify_key,
    key_id_algorithm,
    verify_signed_json,
)

__all__ = ["SignatureChecker", "check_membership", "verify_third_party_invite_signature"]

#: ``(event, server_name) -> bool``: does ``event`` carry a *valid* signature from
#: ``server_name``?  See :func:`check_membership` for the default.
SignatureChecker = Callable[[Pdu, str], bool]


def _signed_by(event: Pdu, server_name: str) -> bool:
    """Default signature check: a signature from the server is present.

    Cryptographic verification needs the server's keys (network I/O), so it belongs to the
    receipt pipeline, which must verify every signature listed by
    :func:`~dendrite_lite.events.event_signing.required_signature_servers` *before* the
    auth rules run; given that, presence is equivalent to validity here.
    """
    entity = event.signatures.get(server_name)
    return isinstance(entity, Mapping) and bool(entity)


def verify_third_party_invite_signature(signed: Mapping[str, Any], invite_event: Pdu) -> bool:
    """Rule 5.4.1.7: does any signature in ``signed`` match any public key of the
    ``m.room.third_party_invite`` event (``public_key`` and ``public_keys[].public_key``)?

    Keys may use either base64 alphabet; malformed keys or signatures are skipped.
    """
    keys: list[object] = [invite_event.content.get("public_key")]
    public_keys = invite_event.content.get("public_keys")
    if isinstance(public_keys, list):
        keys.extend(k.get("public_key") for k in public_keys if isinstance(k, Mapping))
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    for encoded_key in keys:
        if not isinstance(encoded_key, str):
            continue
        try:
            verify_key = decode_verify_key(encoded_key)
        except ValueError:
            continue
        for server_name, server_signatures in signatures.items():
            if not isinstance(server_signatures, Mapping):
                continue
            for key_id in server_signatures:
                if not isinstance(key_id, str) or key_id_algorithm(key_id) != ED25519:
                    continue
                try:
                    verify_signed_json(signed, server_name, key_id, verify_key)
                except (SignatureVerifyError, ValueError):
                    continue
                return True
    return False


def _check_third_party_invite(event: Pdu, target: str, state: AuthState) -> None:
    """Rule 5.4.1: an invite carrying ``third_party_invite``."""
    if membership_of(state, target) == "ban":
        raise AuthError("target user is banned")
    third_party_invite = event.content["third_party_invite"]
    signed = third_party_invite.get("signed") if isinstance(third_party_invite, Mapping) else None
    if not isinstance(signed, Mapping):
        raise AuthError("third_party_invite has no signed object")
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError("third_party_invite.signed lacks mxid or token")
    if mxid != target:
        raise AuthError("third_party_invite mxid does not match state_key")
    invite_event = state.get(("m.room.third_party_invite", token))
    if invite_event is None:
        raise AuthError("no m.room.third_party_invite for this token")
    if invite_event.sender != event.sender:
        raise AuthError("sender did not send the m.room.third_party_invite")
    if not verify_third_party_invite_signature(signed, invite_event):
        raise AuthError("third_party_invite signature does not match any public key")


def _check_join(event: Pdu, target: str, state: AuthState, room_version: RoomVersion) -> None:
    """Rule 5.3."""
    create = state.get(CREATE_KEY)
    if create is not None and event.prev_events == (create.event_id,):
        # 5.3.1: the creator's own first join ("the creator" in v1-10, "the sender of the
        # m.room.create" from v11 on, not the v12 additional creators).
        first_member = (
            create.sender if room_version.implicit_room_creator else create.content.get("creator")
        )
        if target == first_member:
            return
    if event.sender != target:
        raise AuthError("cannot join on behalf of another user")
    current = membership_of(state, target)
    if current == "ban":
        raise AuthError("sender is banned")
    rule = join_rule(state)
    if rule == "invite" or (room_version.knock_join_rule and rule == "knock"):
        if current in ("invite", "join"):
            return
        raise AuthError("room is invite-only and sender is not invited")
    if (room_version.restricted_join_rule and rule == "restricted") or (
        room_version.knock_restricted_join_rule and rule == "knock_restricted"
    ):
        if current in ("join", "invite"):
            return
        authoriser = event.content.get("join_authorised_via_users_server")
        if not isinstance(authoriser, str):
            raise AuthError("restricted join without join_authorised_via_users_server")
        if membership_of(state, authoriser) != "join":
            raise AuthError("join authoriser is not joined to the room")
        invite_level = named_level(state, "invite", room_version)
        if user_power_level(state, authoriser, room_version) < invite_level:
            raise AuthError("join authoriser cannot invite users")
        return
    if rule == "public":
        return
    raise AuthError(f"join rule {rule!r} does not allow joining")


def _check_invite(event: Pdu, target: str, state: AuthState, room_version: RoomVersion) -> None:
    """Rule 5.4."""
    if "third_party_invite" in event.content:
        _check_third_party_invite(event, target, state)
        return
    if membership_of(state, event.sender) != "join":
        raise AuthError("inviter is not joined to the room")
    if membership_of(state, target) in ("join", "ban"):
        raise AuthError("invitee is already joined or banned")
    invite_level = named_level(state, "invite", room_version)
    if user_power_level(state, event.sender, room_version) < invite_level:
        raise AuthError("sender's power level is below the invite level")


def _check_leave(event: Pdu, target: str, state: AuthState, room_version: RoomVersion) -> None:
    """Rule 5.5 (leaving, rejecting an invite or knock, kicking, unbanning)."""
    if event.sender == target:
        allowed = (
            ("invite", "join", "knock") if room_version.knock_join_rule else ("invite", "join")
        )
        if membership_of(state, target) in allowed:
            return
        raise AuthError("cannot leave a room one is not in, invited to or knocking on")
    if membership_of(state, event.sender) != "join":
        raise AuthError("sender is not joined to the room")
    sender_level = user_power_level(state, event.sender, room_version)
    if membership_of(state, target) == "ban" and sender_level < named_level(
        state, "ban", room_version
    ):
        raise AuthError("sender's power level is below the ban level (unban)")
    if (
        sender_level >= named_level(state, "kick", room_version)
        and user_power_level(state, target, room_version) < sender_level
    ):
        return
    raise AuthError("sender cannot kick this user")


def _check_ban(event: Pdu, target: str, state: AuthState, room_version: RoomVersion) -> None:
    """Rule 5.6."""
    if membership_of(state, event.sender) != "join":
        raise AuthError("sender is not joined to the room")
    sender_level = user_power_level(state, event.sender, room_version)
    if (
        sender_level >= named_level(state, "ban", room_version)
        and user_power_level(state, target, room_version) < sender_level
    ):
        return
    raise AuthError("sender cannot ban this user")


def _check_knock(event: Pdu, target: str, state: AuthState, room_version: RoomVersion) -> None:
    """Rule 5.7 (v7+)."""
    rule = join_rule(state)
    if not (
        rule == "knock" or (room_version.knock_restricted_join_rule and rule == "knock_restricted")
    ):
        raise AuthError(f"join rule {rule!r} does not allow knocking")
    if event.sender != target:
        raise AuthError("cannot knock on behalf of another user")
    if membership_of(state, event.sender) in ("ban", "invite", "join"):
        raise AuthError("sender is banned, invited or joined and cannot knock")


def check_membership(
    event: Pdu,
    state: AuthState,
    room_version: RoomVersion,
    *,
    is_signed_by: SignatureChecker | None = None,
) -> None:
    """Rule 5: allow (return) or reject (raise :class:`AuthError`) a membership change.

    ``is_signed_by`` answers rule 5.2 (the ``join_authorised_via_users_server`` server must
    have validly signed the event); by default the presence of that server's signature is
    taken as valid (see :func:`_signed_by`).
    """
    target = event.state_key
    membership = event.content.get("membership")
    if target is None or "membership" not in event.content:
        raise AuthError("member event without state_key or membership")
    if room_version.restricted_join_rule and "join_authorised_via_users_server" in event.content:
        authoriser = event.content["join_authorised_via_users_server"]
        try:
            domain = get_domain(authoriser) if isinstance(authoriser, str) else None
        except ValueError:
            domain = None
        if domain is None or not (is_signed_by or _signed_by)(event, domain):
            raise AuthError("event is not signed by the join authoriser's server")
    if membership == "join":
        _check_join(event, target, state, room_version)
    elif membership == "invite":
        _check_invite(event, target, state, room_version)
    elif membership == "leave":
        _check_leave(event, target, state, room_version)
    elif membership == "ban":
        _check_ban(event, target, state, room_version)
    elif membership == "knock" and room_version.knock_join_rule:
        _check_knock(event, target, state, room_version)
    else:
        raise AuthError(f"unknown membership {membership!r}")
