"""State resolution v2 (room versions 2-11) and v2.1 (room version 12).

Spec: https://spec.matrix.org/latest/rooms/v2/#state-resolution and, for the v12
changes (MSC4297), https://spec.matrix.org/latest/rooms/v12/#state-resolution.

The resolution of state sets S1..Sn:

1. Split the state into the *unconflicted state map* (keys present in every set with the
   same event) and the *conflicted state set* (everything else).
2. The *full conflicted set* is the union of the conflicted state set, the *auth
   difference* (events in some but not all of the sets' full auth chains) and (v12) the
   *conflicted state subgraph*.
3. Take the *power events* of the full conflicted set plus their auth ancestors within it;
   sort them by *reverse topological power ordering*; apply *iterative auth checks*
   starting from the unconflicted state map (v12: from an empty state map).
4. Sort the remaining events by *mainline ordering* against the resulting power levels and
   apply iterative auth checks on top.
5. Overwrite with the unconflicted state map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

from dendrite_lite.events.auth_rules import (
    AuthError,
    SignatureChecker,
    auth_types_for_event,
    check_auth,
    user_power_level,
)
from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import RoomVersion, StateResAlgorithm
from dendrite_lite.events.state_res.graph import (
    auth_chain,
    auth_difference,
    conflicted_subgraph,
    lexicographic_topological_sort,
)

__all__ = [
    "is_power_event",
    "iterative_auth_checks",
    "mainline_sort",
    "resolve_state_v2",
    "reverse_topological_power_sort",
    "separate",
]

_PL_KEY: StateKey = ("m.room.power_levels", "")
_CREATE_KEY: StateKey = ("m.room.create", "")


def separate(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """Step 1: ``(unconflicted state map, conflicted state set by key)``.

    A key missing from some state set is conflicted, even if all sets that have it agree.
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    keys = set().union(*(s.keys() for s in state_sets)) if state_sets else set()
    for key in keys:
        values = {s.get(key) for s in state_sets}
        present = {v for v in values if v is not None}
        if len(values) == 1 and len(present) == 1:
            unconflicted[key] = present.pop()
        else:
            conflicted[key] = present
    return unconflicted, conflicted


def is_power_event(event: Pdu) -> bool:
    """A state event that may take abilities away: power levels, join rules, or a member
    event with membership ``leave``/``ban`` whose sender is not its target (kick, ban)."""
    if event.state_key is None:
        return False
    if event.type in ("m.room.power_levels", "m.room.join_rules"):
        return event.state_key == ""
    if event.type == "m.room.member":
        return event.membership in ("leave", "ban") and event.sender != event.state_key
    return False


def _create_event_for(
    room_version: RoomVersion, event: Pdu, event_map: Mapping[str, Pdu]
) -> Pdu | None:
    """v12: the create event is not an auth event; find it through the room ID."""
    if not room_version.room_id_is_create_event_id or event.room_id is None:
        return None
    return event_map.get("$" + event.room_id[1:])


def _auth_event_state(
    room_version: RoomVersion,
    event: Pdu,
    event_map: Mapping[str, Pdu],
    rejected: AbstractSet[str],
) -> dict[StateKey, Pdu]:
    """The event's (known, not rejected) auth events as a state map."""
    state: dict[StateKey, Pdu] = {}
    create = _create_event_for(room_version, event, event_map)
    if create is not None and create.event_id not in rejected:
        state[_CREATE_KEY] = create
    for auth_id in event.auth_events:
        auth_event = event_map.get(auth_id)
        if auth_event is not None and auth_event.state_key is not None and auth_id not in rejected:
            state[(auth_event.type, auth_event.state_key)] = auth_event
    return state


def _sender_power(room_version: RoomVersion, event: Pdu, event_map: Mapping[str, Pdu]) -> float:
    """The sender's power level "when looking at their respective auth_events".

    A power levels value that cannot be parsed counts as 0 rather than aborting the whole
    resolution (the reference implementations would raise here).
    """
    state = _auth_event_state(room_version, event, event_map, frozenset())
    try:
        return user_power_level(state, event.sender, room_version)
    except AuthError:
        return 0


def reverse_topological_power_sort(
    room_version: RoomVersion,
    event_ids: AbstractSet[str],
    event_map: Mapping[str, Pdu],
    full_conflicted_set: AbstractSet[str],
) -> list[str]:
    """Step 3: add the auth ancestors (within the full conflicted set) of ``event_ids`` and
    order everything earliest first; ties: higher sender power level, then lower
    ``origin_server_ts``, then lower event ID."""
    graph: dict[str, set[str]] = {}
    stack = list(event_ids)
    while stack:
        event_id = stack.pop()
        if event_id in graph:
            continue
        edges = {a for a in event_map[event_id].auth_events if a in full_conflicted_set}
        graph[event_id] = edges
        stack.extend(a for a in edges if a not in graph)
    keys = {
        event_id: (
            -_sender_power(room_version, event_map[event_id], event_map),
            event_map[event_id].origin_server_ts,
            event_id,
        )
        for event_id in graph
    }
    return lexicographic_topological_sort(graph, keys.__getitem__)


def iterative_auth_checks(
    room_version: RoomVersion,
    event_ids: Sequence[str],
    base_state: Mapping[StateKey, str],
    event_map: Mapping[str, Pdu],
    *,
    rejected: AbstractSet[str] = frozenset(),
    is_signed_by: SignatureChecker | None = None,
) -> dict[StateKey, str]:
    """Apply each state event in order if the auth rules allow it against the state so far.

    Keys the rules need but the state lacks are taken from the event's own auth events;
    rejected events are never used as auth events.
    """
    state = dict(base_state)
    for event_id in event_ids:
        event = event_map[event_id]
        if event.state_key is None:
            continue
        auth_state = _auth_event_state(room_version, event, event_map, rejected)
        for key in auth_types_for_event(room_version, event):
            current = event_map.get(state[key]) if key in state else None
            if current is not None and current.event_id not in rejected:
                auth_state[key] = current
        try:
            check_auth(room_version, event, auth_state, is_signed_by=is_signed_by)
        except AuthError:
            continue
        state[(event.type, event.state_key)] = event_id
    return state


def _power_levels_parent(event: Pdu, event_map: Mapping[str, Pdu]) -> str | None:
    for auth_id in event.auth_events:
        auth_event = event_map.get(auth_id)
        if auth_event is not None and (auth_event.type, auth_event.state_key) == _PL_KEY:
            return auth_id
    return None


def mainline_sort(
    event_ids: AbstractSet[str], power_levels_id: str | None, event_map: Mapping[str, Pdu]
) -> list[str]:
    """Step 4: order by *mainline position* (descending: events based on older power
    levels first; events not based on the mainline at all first of all), then
    ``origin_server_ts``, then event ID."""
    mainline: dict[str, int] = {}
    current = power_levels_id
    while current is not None and current not in mainline and current in event_map:
        mainline[current] = len(mainline)
        current = _power_levels_parent(event_map[current], event_map)

    positions: dict[str, float] = {}

    def position_of_power_levels(pl_id: str) -> float:
        """Mainline position reached by walking up from a power levels event."""
        path: list[str] = []
        on_path: set[str] = set()
        walk: str | None = pl_id
        result = math.inf
        while walk is not None and walk not in on_path:  # (cycles can only be forged data)
            if walk in mainline:
                result = mainline[walk]
                break
            if walk in positions:
                result = positions[walk]
                break
            path.append(walk)
            on_path.add(walk)
            walk = _power_levels_parent(event_map[walk], event_map) if walk in event_map else None
        for visited in path:
            positions[visited] = result
        return result

    def sort_key(event_id: str) -> tuple[float, int, str]:
        event = event_map[event_id]
        parent = _power_levels_parent(event, event_map)
        position = math.inf if parent is None else position_of_power_levels(parent)
        return (-position, event.origin_server_ts, event_id)

    return sorted(event_ids, key=sort_key)


def resolve_state_v2(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    event_map: Mapping[str, Pdu],
    *,
    auth_chains: Sequence[AbstractSet[str]] | None = None,
    rejected: AbstractSet[str] = frozenset(),
    is_signed_by: SignatureChecker | None = None,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` (``(type, state_key) -> event ID``) with state res v2 / v2.1.

    ``event_map`` must hold the events of the state sets and of their auth chains (unknown
    events are left out of the resolution).  ``auth_chains[i]``, if given, is the full auth
    chain of ``state_sets[i]``: the auth chains of its events *plus the events themselves*
    (as the reference implementations compute it); otherwise it is derived from
    ``event_map``.  ``rejected`` are events never to be used as auth events.
    """
    unconflicted, conflicted = separate(state_sets)
    if not conflicted:
        return unconflicted
    if auth_chains is None:
        auth_chains = [auth_chain(s.values(), event_map) | set(s.values()) for s in state_sets]
    conflicted_events = set().union(*conflicted.values())
    full_conflicted_set = auth_difference(auth_chains) | conflicted_events
    if room_version.state_res is StateResAlgorithm.V2_1:
        full_conflicted_set |= conflicted_subgraph(conflicted_events, event_map)
    full_conflicted_set = {e for e in full_conflicted_set if e in event_map}

    power_events = {e for e in full_conflicted_set if is_power_event(event_map[e])}
    sorted_power = reverse_topological_power_sort(
        room_version, power_events, event_map, full_conflicted_set
    )
    initial = {} if room_version.state_res is StateResAlgorithm.V2_1 else unconflicted
    partial = iterative_auth_checks(
        room_version,
        sorted_power,
        initial,
        event_map,
        rejected=rejected,
        is_signed_by=is_signed_by,
    )
    remaining = full_conflicted_set - set(sorted_power)
    sorted_remaining = mainline_sort(remaining, partial.get(_PL_KEY), event_map)
    resolved = iterative_auth_checks(
        room_version,
        sorted_remaining,
        partial,
        event_map,
        rejected=rejected,
        is_signed_by=is_signed_by,
    )
    resolved.update(unconflicted)
    return resolved
