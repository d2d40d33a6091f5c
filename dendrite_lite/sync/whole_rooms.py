"""What a sync needs of each room it sends whole, read for many rooms at once.

An initial sync sends every joined room whole: its member counts, whether it has a
name, its full state and, for history visibility, the user's membership and the
room's history_visibility in the state its timeline was sent in. Read room by room,
that is a dozen statements a room, most of the time of an initial sync in 500 rooms; a
statement for all of them costs a fraction (DESIGN.md: never a query in a Python loop
over rows when one statement can do it).

With them go each room's newest events, the first read of its timeline, and which of
those have relations to bundle (most have none, and need no look of their own).

Rooms are read in chunks, in the order the sync sends them, so that a user in
thousands of large rooms never holds all their state at once. What is read is keyed by
state group: a room whose timeline starts in another state than its current one (a
state event in the timeline) reads that state itself, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw
import msgspec

from dendrite_lite.rooms import client_format
from dendrite_lite.storage import events, relations, room_state
from dendrite_lite.storage.events import EventRow
from dendrite_lite.storage.room_state import StateMap, VisibilityEntries

CHUNK = 100
# Timelines longer than this are read room by room (a chunk's rows stay few).
MAX_NEWEST = 51
# Rooms with more members than this have their state read room by room: a chunk of
# large rooms would hold all their state at once.
MAX_MEMBERS = 200
HEROES = 5
# Heroes are members who are here (or were invited), else those who left or were banned.
PRESENT = ("join", "invite")
ABSENT = ("leave", "ban")
NAME_TYPES = ("m.room.name", "m.room.canonical_alias")


@dataclass(frozen=True)
class WholeRoom:
    group: int | None  # the room's current state group
    visibility: VisibilityEntries | None  # for the user, in `group`
    state: StateMap | None  # the full state of `group` (None: a large room, read alone)
    member_counts: dict[str, int]
    named: bool
    # The first members present (sync/rooms.py summary), when the room has no name and
    # any are; None: the summary looks further itself.
    heroes: list[str] | None
    # Its newest events up to the sync's position, newest first (sync/rooms.py
    # timeline's first read); None: not read (a long timeline limit).
    newest: list[EventRow] | None
    # Events among the chunk's newest (this room's and others') known to have no
    # children to aggregate.
    childless: frozenset[str]


def named_rooms(conn: apsw.Connection, room_ids: list[str]) -> set[str]:
    """The rooms with a non-empty m.room.name or m.room.canonical_alias."""
    nids = [
        int(nid)
        for (nid,) in conn.execute(
            "SELECT event_nid FROM current_state WHERE room_id IN (SELECT value FROM"
            " json_each(?1)) AND type IN (?2, ?3) AND state_key = ''",
            (msgspec.json.encode(room_ids), *NAME_TYPES),
        )
    ]
    named: set[str] = set()
    for row in events.get_by_nids(conn, nids).values():
        content = client_format.decode(row).get("content")
        if isinstance(content, dict) and (content.get("name") or content.get("alias")):
            named.add(row.room_id)
    return named


def first_heroes(
    conn: apsw.Connection, room_ids: list[str], user_id: str, memberships: tuple[str, ...]
) -> dict[str, list[str]]:
    """The first HEROES members of each room with one of `memberships`, never the user
    (rooms with none left out)."""
    candidates = room_state.first_members(conn, room_ids, memberships, HEROES + 1)
    heroes = {
        room_id: [member for member, _ in members if member != user_id][:HEROES]
        for room_id, members in candidates.items()
    }
    return {room_id: members for room_id, members in heroes.items() if members}


class WholeRooms:
    """The rooms a sync sends whole (joined, in the order it sends them), read a chunk
    at a time as the sync reaches them."""

    def __init__(
        self,
        conn: apsw.Connection,
        user_id: str,
        room_ids: list[str],
        upto: int,
        newest: int,
    ) -> None:
        """`newest`: how many of each room's newest events up to `upto` to read."""
        self._conn = conn
        self._user_id = user_id
        self._upto = upto
        self._newest = newest
        self._order = {room_id: index for index, room_id in enumerate(room_ids)}
        self._room_ids = room_ids
        self._chunk = -1
        self._rooms: dict[str, WholeRoom] = {}

    def get(self, room_id: str) -> WholeRoom | None:
        index = self._order.get(room_id)
        if index is None:
            return None
        if index // CHUNK != self._chunk:
            self._chunk = index // CHUNK
            start = self._chunk * CHUNK
            self._rooms = self._read(self._room_ids[start : start + CHUNK])
        return self._rooms.get(room_id)

    def _read(self, room_ids: list[str]) -> dict[str, WholeRoom]:
        conn = self._conn
        groups = room_state.current_groups(conn, room_ids)
        known = {group for group in groups.values() if group is not None}
        visibility = room_state.visibility_entries_in(conn, known, self._user_id)
        counts = room_state.member_counts_in(conn, room_ids)
        # The state of large rooms is read room by room, as the sync reaches each.
        small = {
            group
            for room_id, group in groups.items()
            if group is not None and sum(counts.get(room_id, {}).values()) <= MAX_MEMBERS
        }
        states = room_state.states_at(conn, small)
        named = named_rooms(conn, room_ids)
        heroes = first_heroes(conn, [r for r in room_ids if r not in named], self._user_id, PRESENT)
        newest = (
            events.newest_in_rooms(conn, room_ids, before=self._upto + 1, limit=self._newest)
            if self._newest <= MAX_NEWEST
            else None
        )
        parents = [
            row.event_id
            for rows in (newest or {}).values()
            for row in rows
            if row.state_key is None
        ]
        childless = frozenset(parents) - relations.with_children(conn, parents)
        return {
            room_id: WholeRoom(
                group,
                None if group is None else visibility[group],
                None if group is None else states.get(group),
                counts.get(room_id, {}),
                room_id in named,
                heroes.get(room_id),
                None if newest is None else newest.get(room_id, []),
                childless,
            )
            for room_id, group in groups.items()
        }
