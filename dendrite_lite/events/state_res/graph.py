"""Walks over the ``auth_events`` DAG used by state resolution.

Spec definitions in https://spec.matrix.org/latest/rooms/v12/#definitions: auth chain,
auth difference, conflicted state subgraph (v12), and the lexicographically smallest
topological ordering computed with Kahn's algorithm.

All walks are iterative: real auth chains are thousands of events deep, far beyond
Python's recursion limit.  Events absent from the event map are treated as unknown and
skipped (a server can only resolve with the events it has).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from dendrite_lite.events.pdu import Pdu

__all__ = [
    "auth_chain",
    "auth_difference",
    "conflicted_subgraph",
    "lexicographic_topological_sort",
]


def auth_chain(event_ids: Iterable[str], event_map: Mapping[str, Pdu]) -> set[str]:
    """Every event reachable through ``auth_events`` from ``event_ids`` (not the events
    themselves, unless one is an auth ancestor of another)."""
    seen: set[str] = set()
    stack: list[str] = []
    for event_id in event_ids:
        event = event_map.get(event_id)
        if event is not None:
            stack.extend(event.auth_events)
    while stack:
        event_id = stack.pop()
        if event_id in seen:
            continue
        seen.add(event_id)
        event = event_map.get(event_id)
        if event is not None:
            stack.extend(a for a in event.auth_events if a not in seen)
    return seen


def auth_difference(chains: Iterable[AbstractSet[str]]) -> set[str]:
    """``union(Ci) - intersection(Ci)``: events in some but not all of the auth chains."""
    chain_list = list(chains)
    if not chain_list:
        return set()
    union: set[str] = set().union(*chain_list)
    common: set[str] = set(chain_list[0]).intersection(*chain_list[1:])
    return union - common


def conflicted_subgraph(conflicted: AbstractSet[str], event_map: Mapping[str, Pdu]) -> set[str]:
    """The *conflicted state subgraph* (room version 12, MSC4297).

    The union of all ``auth_events`` paths between pairs of conflicted events, endpoints
    included: the events reachable from some conflicted event from which some conflicted
    event is reachable, plus the conflicted events themselves.
    """
    # 1. Everything reachable (in one or more steps) from the conflicted events.
    reachable = auth_chain(conflicted, event_map)
    # 2. Of those, the ones from which a conflicted event is reachable: an iterative
    #    post-order DFS computing "leads_to_conflict" for each visited event.
    leads_to_conflict: dict[str, bool] = {}
    for root in reachable:
        if root in leads_to_conflict:
            continue
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            event_id, children_done = stack.pop()
            event = event_map.get(event_id)
            parents = event.auth_events if event is not None else ()
            if children_done:
                leads_to_conflict[event_id] = any(
                    p in conflicted or leads_to_conflict.get(p, False) for p in parents
                )
                continue
            if event_id in leads_to_conflict:
                continue
            leads_to_conflict[event_id] = False  # provisional; guards against cycles
            stack.append((event_id, True))
            stack.extend((p, False) for p in parents if p not in leads_to_conflict)
    return {e for e in reachable if leads_to_conflict.get(e, False)} | set(conflicted)


def lexicographic_topological_sort(
    graph: Mapping[str, AbstractSet[str]], key: Callable[[str], Any]
) -> list[str]:
    """Kahn's algorithm over ``graph`` (event -> its auth events inside the graph).

    Auth events come before the events they authorise ("from earliest to latest"); among
    the candidates at each step, the one with the smallest ``key`` is taken.
    """
    remaining = {node: set(edges) for node, edges in graph.items()}
    dependents: dict[str, set[str]] = {node: set() for node in graph}
    for node, edges in graph.items():
        for edge in edges:
            dependents.setdefault(edge, set()).add(node)
    heap = [(key(node), node) for node, edges in remaining.items() if not edges]
    heapq.heapify(heap)
    ordered: list[str] = []
    while heap:
        _, node = heapq.heappop(heap)
        ordered.append(node)
        for dependent in dependents.get(node, ()):
            edges = remaining[dependent]
            edges.discard(node)
            if not edges:
                heapq.heappush(heap, (key(dependent), dependent))
    return ordered
