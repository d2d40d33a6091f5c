"""State resolution for room version 1.

Spec: https://spec.matrix.org/latest/rooms/v1/#state-resolution

Known to reset state in some situations (the reason v2 exists) but it is what v1 rooms
use, and every server must agree on it.  Start from the union of the non-conflicting
state; then resolve conflicts between power levels, then join rules, then memberships,
each by walking the candidates in ascending ``depth`` (ties: descending ``sha1(event_id)``)
and keeping the last one the auth rules accept in sequence; any other conflict is won by
the highest-``depth`` (ties: lowest ``sha1(event_id)``) candidate that passes auth.

Where the prose is silent the reference implementation (Synapse) is followed: each
membership key is resolved independently against the same intermediate state, and a
non-auth conflict in which no candidate passes auth goes to the last candidate tried
(the lowest depth).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet

from dendrite_lite.events.auth_rules import AuthError, SignatureChecker, check_auth
from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import RoomVersion

__all__ = ["resolve_state_v1", "separate_v1"]

_PL_KEY: StateKey = ("m.room.power_levels", "")


def separate_v1(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """A conflict is two sets holding *different* events for a key; a key that only some
    sets have is not conflicted in v1 (unlike v2)."""
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    for state_set in state_sets:
        for key, event_id in state_set.items():
            if key in conflicted:
                conflicted[key].add(event_id)
            elif key not in unconflicted:
                unconflicted[key] = event_id
            elif unconflicted[key] != event_id:
                conflicted[key] = {unconflicted.pop(key), event_id}
    return unconflicted, conflicted


def _sha1(event: Pdu) -> str:
    return hashlib.sha1(event.event_id.encode("utf-8"), usedforsecurity=False).hexdigest()


def _passes(
    room_version: RoomVersion,
    event: Pdu,
    state: Mapping[StateKey, Pdu],
    is_signed_by: SignatureChecker | None,
) -> bool:
    try:
        check_auth(room_version, event, state, is_signed_by=is_signed_by)
    except AuthError:
        return False
    return True


def _resolve_auth_conflict(
    room_version: RoomVersion,
    events: list[Pdu],
    state: Mapping[StateKey, Pdu],
    is_signed_by: SignatureChecker | None,
) -> Pdu:
    """Ascending depth, descending sha1: take the first, then each next one while it is
    allowed in the state so far."""
    ordered = sorted(events, key=_sha1, reverse=True)
    ordered.sort(key=lambda e: e.depth)  # stable: depth ascending, sha1 descending
    trial = dict(state)
    winner = ordered[0]
    for candidate in ordered[1:]:
        trial[(winner.type, winner.state_key or "")] = winner
        if not _passes(room_version, candidate, trial, is_signed_by):
            break
        winner = candidate
    return winner


def _resolve_other_conflict(
    room_version: RoomVersion,
    events: list[Pdu],
    state: Mapping[StateKey, Pdu],
    is_signed_by: SignatureChecker | None,
) -> Pdu:
    """Highest depth, then lowest sha1, among those passing auth in ``state``."""
    ordered = sorted(events, key=_sha1)
    ordered.sort(key=lambda e: e.depth, reverse=True)
    for candidate in ordered:
        if _passes(room_version, candidate, state, is_signed_by):
            return candidate
    return ordered[-1]


def resolve_state_v1(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    event_map: Mapping[str, Pdu],
    *,
    rejected: AbstractSet[str] = frozenset(),
    is_signed_by: SignatureChecker | None = None,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` with the room version 1 algorithm.

    Conflicting events absent from ``event_map`` are ignored; ``rejected`` events in the
    unconflicted state are not used to authorise candidates.
    """
    unconflicted, conflicted = separate_v1(state_sets)
    if not conflicted:
        return unconflicted
    state: dict[StateKey, Pdu] = {
        key: event_map[event_id]
        for key, event_id in unconflicted.items()
        if event_id in event_map and event_id not in rejected
    }
    candidates = {
        key: [event_map[e] for e in ids if e in event_map] for key, ids in conflicted.items()
    }
    resolved: dict[StateKey, Pdu] = {}
    phases: tuple[Callable[[StateKey], bool], ...] = (
        lambda key: key == _PL_KEY,
        lambda key: key[0] == "m.room.join_rules",
        lambda key: key[0] == "m.room.member",
    )
    for in_phase in phases:
        phase_result = {
            key: _resolve_auth_conflict(room_version, events, state, is_signed_by)
            for key, events in candidates.items()
            if events and key not in resolved and in_phase(key)
        }
        resolved.update(phase_result)
        state.update(phase_result)
    for key, events in candidates.items():
        if events and key not in resolved:
            resolved[key] = _resolve_other_conflict(room_version, events, state, is_signed_by)
    result = dict(unconflicted)
    result.update({key: event.event_id for key, event in resolved.items()})
    return result
