"""Hot room data for sliding sync: each room's current non-member state, member counts,
name, avatar, alias and hero candidates, kept in memory.

Everything here changes only through an event in the room, and every event takes a new
stream position, so an entry is valid exactly while the room's newest stream position
is the one it was built at: one indexed lookup validates it and nothing has to be told
of writes (the event pipeline stays untouched, and no invalidation can be forgotten).
Entries are immutable and replaced whole, so reader threads share them without locks
beyond the one that keeps the map's size bounded (least recently used out first).

An entry outdated only by messages is carried forward instead of rebuilt: the room's
current state changes only when a state event is persisted (rooms/pipeline.py is the
one writer of `current_state`) and a stored event only by a redaction (an event too),
so if the room's events since the entry was built hold neither, only its tail is new.
That is the common case of a room list: a message lifts a room into the window, and
the room is sent whole with the state it had.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import apsw
import msgspec

from dendrite_lite.rooms import client_format
from dendrite_lite.sliding_sync.required_state import RoomConfig
from dendrite_lite.storage import events, room_state
from dendrite_lite.storage import sliding_sync as store
from dendrite_lite.storage.events import EventRow

# ~8 KiB an entry (its state events and tail): at most ~8 MiB.
MAX_ROOMS = 1024
HERO_CANDIDATES = 6  # 5 heroes, one spare for the user looking
# The newest events kept per room: room lists ask for 1 (Element X) to a few; a longer
# timeline is read from the database.
TAIL = 3
# An entry is carried forward over at most this many new events (beyond, rebuilt).
MAX_CARRIED = 64


@dataclass(frozen=True)
class Hero:
    user_id: str
    displayname: str | None
    avatar_url: str | None

    def as_json(self) -> dict[str, str]:
        hero = {"user_id": self.user_id}
        if self.displayname is not None:
            hero["displayname"] = self.displayname
        if self.avatar_url is not None:
            hero["avatar_url"] = self.avatar_url
        return hero


@dataclass(frozen=True)
class RoomSnapshot:
    latest: int  # the room's newest stream position it was built at
    non_member: dict[tuple[str, str], int]
    rows: dict[int, EventRow]  # the non-member state events
    joined: int
    invited: int
    name: str | None
    avatar: str | None
    alias: str | None
    # The first joined or invited members by stream order, and those who left or were
    # banned (heroes when nobody else is joined or invited).
    present: tuple[Hero, ...]
    departed: tuple[Hero, ...]
    # The newest events, oldest first (at most TAIL; fewer: the room has no more).
    tail: tuple[EventRow, ...]
    # Member events looked up so far: user -> (event_nid, row); None: not a member.
    # Filled by readers as they go (one dict assignment, atomic under the GIL).
    members: dict[str, tuple[int, EventRow] | None] = field(default_factory=dict)
    # The non-member state each room config asks for (room lists share one config).
    matched: dict[RoomConfig, dict[tuple[str, str], int]] = field(default_factory=dict)

    def matching(self, config: RoomConfig) -> dict[tuple[str, str], int]:
        found = self.matched.get(config)
        if found is None:
            found = {k: nid for k, nid in self.non_member.items() if config.matches(*k)}
            self.matched[config] = found
        return found

    def serve(self, row: EventRow, now_ts: int) -> msgspec.Raw:
        """A state event as client_format.serve(row, now=now_ts) serves it. Built on each
        call: keeping the served bytes beside the row doubled the entry's size for a
        saving of one slice."""
        fixed = row.unsigned[1:-1]
        return msgspec.Raw(
            b"".join(
                (
                    row.client[:-1],
                    b',"unsigned":{"age":',
                    str(now_ts - row.origin_server_ts).encode(),
                    b"," + fixed if fixed else b"",
                    b"}}",
                )
            )
        )

    def heroes(self, user_id: str) -> list[dict[str, str]]:
        for candidates in (self.present, self.departed):
            found = [h.as_json() for h in candidates if h.user_id != user_id][:5]
            if found:
                return found
        return []


_NO_UNSIGNED = b"{}"


def kept(row: EventRow) -> EventRow:
    """The row as an entry keeps it, its repeated strings shared: every row of a room
    names the room, most a handful of types and senders, and SQLite gives each its own
    copy (~200 of an event row's ~1,000 bytes; 500 rooms in a window keep ~6,500 rows)."""
    state_key, device_id = row.state_key, row.device_id
    return msgspec.structs.replace(
        row,
        room_id=sys.intern(row.room_id),
        type=sys.intern(row.type),
        sender=sys.intern(row.sender),
        state_key=None if state_key is None else sys.intern(state_key),
        device_id=None if device_id is None else sys.intern(device_id),
        unsigned=_NO_UNSIGNED if row.unsigned == _NO_UNSIGNED else row.unsigned,
    )


def _content(row: EventRow | None) -> dict[str, Any]:
    if row is None:
        return {}
    content = client_format.decode(row).get("content")
    return content if isinstance(content, dict) else {}


def _text(content: dict[str, Any], key: str) -> str | None:
    value = content.get(key)
    return value if isinstance(value, str) and value else None


def build(conn: apsw.Connection, room_id: str, latest: int) -> RoomSnapshot:
    state = [kept(row) for row in events.current_state_rows(conn, room_id)]
    non_member = {(row.type, row.state_key or ""): row.event_nid for row in state}
    rows = {row.event_nid: row for row in state}

    def content(key: tuple[str, str]) -> dict[str, Any]:
        nid = non_member.get(key)
        return _content(None if nid is None else rows.get(nid))

    counts = room_state.member_counts(conn, room_id)
    name = _text(content(("m.room.name", "")), "name")
    present: tuple[Hero, ...] = ()
    departed: tuple[Hero, ...] = ()
    if name is None:
        present = _heroes(conn, room_id, ("join", "invite"))
        if len({hero.user_id for hero in present}) < 2:
            # Departed members are heroes only for a user who finds nobody else present
            # (RoomSnapshot.heroes); with two present, every user finds someone.
            departed = _heroes(conn, room_id, ("leave", "ban"))
    return RoomSnapshot(
        latest,
        non_member,
        rows,
        counts.get("join", 0),
        counts.get("invite", 0),
        name,
        _text(content(("m.room.avatar", "")), "url"),
        _text(content(("m.room.canonical_alias", "")), "alias"),
        present,
        departed,
        _tail(conn, room_id, latest),
    )


def carried_forward(
    conn: apsw.Connection, room_id: str, snapshot: RoomSnapshot, latest: int
) -> RoomSnapshot | None:
    """The snapshot as of `latest` if the room's events since it was built are neither
    state events nor redactions (then only the tail differs), else None."""
    if latest <= snapshot.latest:
        return None
    if not store.only_messages_between(conn, room_id, snapshot.latest, latest, MAX_CARRIED):
        return None
    # The member lookups and matched state stay valid with the state: shared.
    return replace(snapshot, latest=latest, tail=_tail(conn, room_id, latest))


def _tail(conn: apsw.Connection, room_id: str, latest: int) -> tuple[EventRow, ...]:
    rows = events.room_timeline(conn, room_id, before=latest + 1, limit=TAIL, backwards=True)
    return tuple(kept(row) for row in reversed(rows))


def _heroes(conn: apsw.Connection, room_id: str, memberships: tuple[str, str]) -> tuple[Hero, ...]:
    heroes = []
    candidates = room_state.first_members(conn, [room_id], memberships, HERO_CANDIDATES)
    for member, client in candidates.get(room_id, []):
        decoded = msgspec.json.decode(client).get("content")
        content = decoded if isinstance(decoded, dict) else {}
        heroes.append(Hero(member, _text(content, "displayname"), _text(content, "avatar_url")))
    return tuple(heroes)


class RoomCache:
    def __init__(self, max_rooms: int = MAX_ROOMS) -> None:
        self._rooms: OrderedDict[str, RoomSnapshot] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_rooms

    def get(self, conn: apsw.Connection, room_id: str, latest: int) -> RoomSnapshot:
        """The room's snapshot as of its newest stream position `latest` (looked up in
        the caller's read snapshot)."""
        with self._lock:
            found = self._rooms.get(room_id)
            if found is not None and found.latest == latest:
                self._rooms.move_to_end(room_id)
                return found
        snapshot = None if found is None else carried_forward(conn, room_id, found, latest)
        if snapshot is None:
            snapshot = build(conn, room_id, latest)
        with self._lock:
            self._rooms[room_id] = snapshot
            self._rooms.move_to_end(room_id)
            while len(self._rooms) > self._max:
                self._rooms.popitem(last=False)
        return snapshot
