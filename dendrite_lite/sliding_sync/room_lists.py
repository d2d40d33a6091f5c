"""The user's room list, filtered and cut into windows (MSC4186 "Lists").

The server list is the user's rooms by recent activity (user_rooms, ordered by
bump_stamp: DESIGN.md's per-user room list table): every room joined, invited to or
knocked on; rooms the user was kicked or banned from; rooms the user left only when this
connection was sent them before (so it learns of the leave). A list filters that
sequence and its ranges index into the filtered sequence. The filters' inputs (m.direct,
tags, encryption, room types, spaces) are read only when a list asks for them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import apsw
import msgspec

from dendrite_lite.sliding_sync.requests import Filters, ListSpec
from dendrite_lite.sliding_sync.required_state import RoomConfig
from dendrite_lite.storage import account_data
from dendrite_lite.storage import sliding_sync as store
from dendrite_lite.storage.sliding_sync import ListedRoom

LIVE = frozenset({"join", "invite", "knock"})


class DirectRooms(frozenset[str]):
    """The rooms the user's m.direct names (is_dm), with the stream position m.direct was
    last set at (0: never). A room sent to a connection at or after that position was
    sent with the is_dm that holds now."""

    position: int

    def __new__(cls, rooms: Iterable[str] = (), position: int = 0) -> DirectRooms:
        self = super().__new__(cls, rooms)
        self.position = position
        return self


@dataclass
class RoomFacts:
    """Per-user facts the filters (and is_dm) need, each read at most once."""

    conn: apsw.Connection
    user_id: str
    _direct: DirectRooms | None = None
    _encrypted: set[str] | None = None
    _types: dict[str, str | None] | None = None
    _tags: dict[str, set[str]] | None = None
    _spaces: dict[tuple[str, ...], set[str]] = field(default_factory=dict)

    @property
    def direct(self) -> DirectRooms:
        if self._direct is None:
            found = account_data.get_with_position(
                self.conn, self.user_id, account_data.GLOBAL, "m.direct"
            )
            self._direct = NO_DIRECT if found is None else _direct(*found)
        return self._direct

    @property
    def encrypted(self) -> set[str]:
        if self._encrypted is None:
            self._encrypted = store.encrypted_rooms(self.conn, self.user_id)
        return self._encrypted

    @property
    def types(self) -> dict[str, str | None]:
        if self._types is None:
            self._types = store.room_types(self.conn, self.user_id)
        return self._types

    @property
    def tags(self) -> dict[str, set[str]]:
        if self._tags is None:
            self._tags = store.room_tags(self.conn, self.user_id)
        return self._tags

    def in_spaces(self, spaces: list[str]) -> set[str]:
        key = tuple(sorted(spaces))
        if key not in self._spaces:
            joined = [s for s in key if self._joined(s)]
            self._spaces[key] = store.space_children(self.conn, joined)
        return self._spaces[key]

    def _joined(self, room_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM user_rooms WHERE user_id = ? AND room_id = ? AND membership = 'join'",
            (self.user_id, room_id),
        ).fetchone()
        return row is not None


NO_DIRECT = DirectRooms()


@functools.lru_cache(maxsize=256)
def _direct(content: bytes, position: int) -> DirectRooms:
    """Built once per m.direct version, not per request."""
    return DirectRooms(direct_rooms(content), position)


@functools.lru_cache(maxsize=256)
def direct_rooms(content: bytes | None) -> frozenset[str]:
    """Room IDs named in m.direct ({user_id: [room_id, ...]}); decoded once per content."""
    if content is None:
        return frozenset()
    try:
        value: Any = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return frozenset()
    found: set[str] = set()
    if isinstance(value, dict):
        for rooms in value.values():
            if isinstance(rooms, list):
                found.update(r for r in rooms if isinstance(r, str))
    return frozenset(found)


def server_list(rows: list[ListedRoom], previously_sent: Mapping[str, object]) -> list[ListedRoom]:
    return [
        row
        for row in rows
        if row.membership in LIVE or row.by_other or row.room_id in previously_sent
    ]


def matches(row: ListedRoom, f: Filters, facts: RoomFacts) -> bool:
    room_id = row.room_id
    invited = f.invited
    if invited is not None and (row.membership == "invite") != invited:
        return False
    if f.is_dm is not None and (room_id in facts.direct) != f.is_dm:
        return False
    if f.is_encrypted is not None and (room_id in facts.encrypted) != f.is_encrypted:
        return False
    if f.room_types is not None or f.not_room_types is not None:
        room_type = facts.types.get(room_id)
        if f.not_room_types is not None and room_type in f.not_room_types:
            return False
        if f.room_types is not None and room_type not in f.room_types:
            return False
    if f.tags is not None or f.not_tags is not None:
        tags = facts.tags.get(room_id, set())
        if f.not_tags is not None and tags & set(f.not_tags):
            return False
        if f.tags is not None and not tags & set(f.tags):
            return False
    return f.spaces is None or room_id in facts.in_spaces(f.spaces)


@dataclass(frozen=True)
class ListResult:
    count: int
    # (range, room IDs in it), in the request's order of ranges
    windows: list[tuple[tuple[int, int] | None, list[str]]]

    def room_ids(self) -> tuple[str, ...]:
        return self._room_ids

    @functools.cached_property
    def _room_ids(self) -> tuple[str, ...]:
        # asked for several times per response (extensions, the position, whether the
        # lists changed): worked out once
        if len(self.windows) == 1:
            return tuple(self.windows[0][1])  # one window holds each room once
        seen: dict[str, None] = {}
        for _, ids in self.windows:
            for room_id in ids:
                seen.setdefault(room_id)
        return tuple(seen)

    @functools.cached_property
    def room_id_set(self) -> frozenset[str]:
        return frozenset(self._room_ids)


def compute_lists(
    specs: Mapping[str, ListSpec],
    rows: list[ListedRoom],
    facts: RoomFacts,
    ids: list[str] | None = None,
) -> tuple[dict[str, ListResult], dict[str, RoomConfig]]:
    """Each list's count and windows, and the combined config of every room in a window.
    `ids`: the room IDs of `rows`, in order, when the caller has them (a window of an
    unfiltered list is then a slice, not a loop: Element X's window holds every room)."""
    results: dict[str, ListResult] = {}
    configs: dict[str, RoomConfig] = {}
    all_ids = ids
    for name, spec in specs.items():
        f = spec.filters
        if f == Filters():
            filtered = rows
            if all_ids is None:
                all_ids = [r.room_id for r in rows]
            filtered_ids = all_ids
        else:
            filtered = [r for r in rows if matches(r, f, facts)]
            filtered_ids = [r.room_id for r in filtered]
        windows: list[tuple[tuple[int, int] | None, list[str]]] = []
        if spec.ranges is None:
            windows.append((None, list(filtered_ids)))
        else:
            for start, end in spec.ranges:
                windows.append(((start, end), filtered_ids[start : end + 1]))  # a copy
        result = ListResult(len(filtered), windows)
        results[name] = result
        if not configs:
            configs = dict.fromkeys(result.room_ids(), spec.config)
            continue
        for room_id in result.room_ids():
            known = configs.get(room_id)
            configs[room_id] = spec.config if known is None else known.combine(spec.config)
    return results, configs


def lists_holding(
    results: Mapping[str, ListResult], room_ids: Iterable[str]
) -> dict[str, list[str]]:
    """Per room, the lists whose windows hold it (the accepted shape's `lists` field):
    asked only for the rooms a response sends."""
    found: dict[str, list[str]] = {}
    for room_id in room_ids:
        names = [name for name, result in results.items() if room_id in result.room_id_set]
        if names:
            found[room_id] = names
    return found
