"""State resolution: merging the room states of forked DAG branches.

Spec: https://spec.matrix.org/latest/server-server-api/#room-state-resolution and the
algorithm of each room version: v1 (https://spec.matrix.org/latest/rooms/v1/#state-resolution),
v2 for room versions 2-11 (https://spec.matrix.org/latest/rooms/v2/#state-resolution) and
v2.1 for room version 12 (https://spec.matrix.org/latest/rooms/v12/#state-resolution).

The state *before* an event is the resolution of the states *after* each of its
``prev_events``; the state after a state event is the state before it with the event
applied.  Everything here is pure: callers load the events (and, if they have them
cached, the auth chains) and get back ``(type, state_key) -> event ID``.

Deliberate choices where the spec is silent or ambiguous, matching Synapse and Ruma so
that servers converge: the "full auth chain" of a state set includes the state events
themselves; reverse topological power ordering links events only through auth edges
inside the full conflicted set; ``m.room.create`` is *not* treated as a power event (as
the spec defines it; it only ever reaches the full conflicted set in degenerate cases).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

from dendrite_lite.events.auth_rules import SignatureChecker
from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import RoomVersion, StateResAlgorithm
from dendrite_lite.events.state_res.graph import auth_chain, conflicted_subgraph
from dendrite_lite.events.state_res.v1 import resolve_state_v1
from dendrite_lite.events.state_res.v2 import is_power_event, resolve_state_v2

__all__ = [
    "auth_chain",
    "conflicted_subgraph",
    "is_power_event",
    "resolve_state",
    "resolve_state_v1",
    "resolve_state_v2",
    "state_after",
]


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    event_map: Mapping[str, Pdu],
    *,
    auth_chains: Sequence[AbstractSet[str]] | None = None,
    rejected: AbstractSet[str] = frozenset(),
    is_signed_by: SignatureChecker | None = None,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` with the algorithm of ``room_version``.

    ``event_map`` must contain the events in the state sets and in their auth chains.
    ``auth_chains`` (v2 only) may supply precomputed full auth chains, one per state set,
    each including the set's own events.  ``rejected`` lists events known to be rejected
    (never used to authorise others).  ``is_signed_by`` is passed to the auth rules.
    """
    if not state_sets:
        return {}
    if room_version.state_res is StateResAlgorithm.V1:
        return resolve_state_v1(
            room_version, state_sets, event_map, rejected=rejected, is_signed_by=is_signed_by
        )
    return resolve_state_v2(
        room_version,
        state_sets,
        event_map,
        auth_chains=auth_chains,
        rejected=rejected,
        is_signed_by=is_signed_by,
    )


def state_after(state_before: Mapping[StateKey, str], event: Pdu) -> dict[StateKey, str]:
    """S'(E): the state before ``event`` with ``event`` applied if it is a state event."""
    result = dict(state_before)
    if event.state_key is not None:
        result[(event.type, event.state_key)] = event.event_id
    return result
