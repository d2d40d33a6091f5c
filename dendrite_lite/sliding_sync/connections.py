"""Per-connection state: what each connection has been sent, per position.

A connection is (user, device, conn_id) (MSC4186 "Connections"). Every response that
sends something creates a `Position`: the stream position it covered, the typing serial,
the lists' counts and windows, and for every room ever sent the stream position it was
sent up to and with which config. A `Position` is immutable; the next one copies the
room map and updates the rooms it sent. A response with nothing in it hands back the
same `pos`, so an idle client creates no state and no write.

The state lives in memory (the hot path reads no connection rows) and is saved to
SQLite now and then and at shutdown (saving.py), so after a restart a connection is
loaded back on its next request instead of forcing the client into a full resync (and
so is one that left memory after IDLE_MS unused). For a connection in memory, memory is
the whole truth: a pos it no longer holds is unknown, whatever the database still has.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field

import msgspec

from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.sliding_sync.required_state import RoomConfig, decode_config, encode_config
from dendrite_lite.storage.sliding_sync import (
    MAX_CONNECTIONS_PER_DEVICE,
    StoredPosition,
    StoredRoom,
)

ConnKey = tuple[str, str, str]  # (user_id, device_id, conn_id)
# list name -> (count, room IDs in the list's ranges)
ListsState = Mapping[str, tuple[int, tuple[str, ...]]]
# Pos numbers a millisecond can give out before they run into the next start's
# (Connections.start_numbering); 16 for 1.8e12 ms is 2.9e13, far below parse_pos's 18
# digits.
POS_PER_MS = 16
# A connection nobody used for this long leaves memory at the next save (saving.py), once
# the database holds what it had: its next request loads it back, as after a restart.
# Memory then holds the connections in use, not every device that ever synced (a
# deleted device's connections are gone from the database with it).
IDLE_MS = 30 * 60 * 1000


@dataclass(frozen=True)
class SentRoom:
    stream_pos: int  # timeline and state were sent up to here
    membership: str
    config: RoomConfig
    # Members whose member event the connection has (lazy members are not sent twice)
    members: frozenset[str] = frozenset()
    # The is_dm the connection was told (None: unknown, a position loaded after a
    # restart; sliding_sync/room_results.py decides from m.direct's stream position)
    is_dm: bool | None = None


@dataclass(frozen=True)
class Settled:
    """The rooms whose entry the connection had whole and current when a position was
    made (right config, membership and is_dm: sliding_sync/room_results.consistent), and
    what that held for: the rooms' configs, the user's m.direct and the version of their
    memberships. A request on that position with the same three skips those of them
    that had no event since, without looking at each (Element X's window holds every
    room: a message into one of 500 rooms otherwise cost a check of the other 499)."""

    rooms: frozenset[str]
    configs: Mapping[str, RoomConfig]
    direct: frozenset[str]
    memberships_version: int


@dataclass(frozen=True)
class Position:
    pos_nid: int
    stream_pos: int
    typing_serial: int
    lists: ListsState
    rooms: Mapping[str, SentRoom]
    # None: nothing known settled (a position loaded after a restart checks every room)
    settled: Settled | None = None


@dataclass
class Connection:
    conn_nid: int
    created_ms: int = 0
    positions: dict[int, Position] = field(default_factory=dict)
    # The position the database holds the state of (saving.py); None: nothing of this
    # connection is saved yet. `saved_tidy`: False when the database may hold more than
    # that position's rows (loaded after a restart: the answers built on it, rows that
    # a newer row supersedes).
    saved: Position | None = None
    saved_tidy: bool = True
    used_ms: int = 0  # when the last request on it began (or it was made)


def parse_pos(pos: str) -> int:
    """`pos` is a position number; anything else is a position we never gave out."""
    if not (0 < len(pos) <= 18 and pos.isascii() and pos.isdigit()):
        raise unknown_pos()
    return int(pos)


def unknown_pos() -> MatrixError:
    return MatrixError(400, ErrCode.UNKNOWN_POS, "Unknown or expired pos; start a new connection")


class Connections:
    """The in-memory connection table and the counters that number new state.

    A device holds at most MAX_CONNECTIONS_PER_DEVICE connections, as in the database:
    a client that starts connection after connection with new `conn_id`s (a bug, or an
    abuser) pushes out its own least recently used one instead of growing the table.
    Element X holds three."""

    def __init__(self) -> None:
        self.by_key: dict[ConnKey, Connection] = {}
        self._by_device: dict[tuple[str, str], set[str]] = {}
        self.next_conn_nid = 0  # 0: not yet read from the database
        self.next_pos_nid = 0

    @property
    def numbered(self) -> bool:
        return self.next_pos_nid > 0

    def start_numbering(self, max_conn_nid: int, max_pos_nid: int, now: int) -> None:
        """Positions given out after the last save before a crash were never saved, and
        a client may still hold one: pos numbers start from the clock (POS_PER_MS a
        millisecond since the epoch), above every number the last run gave out unless
        it gave out more than that, or the clock went back. Connection numbers never
        leave the process: after the greatest saved one is enough."""
        if not self.numbered:
            self.next_conn_nid = max_conn_nid + 1
            self.next_pos_nid = max(max_pos_nid + 1, now * POS_PER_MS)

    def new_connection(self, key: ConnKey, created_ms: int) -> tuple[Connection, list[ConnKey]]:
        """The new connection, and the ones of its device it pushed out (their rows in
        the database are the caller's to drop)."""
        connection = Connection(self.next_conn_nid, created_ms, used_ms=created_ms)
        self.next_conn_nid += 1
        return connection, self._put(key, connection)

    def _put(self, key: ConnKey, connection: Connection) -> list[ConnKey]:
        self.by_key[key] = connection
        user_id, device_id, conn_id = key
        conn_ids = self._by_device.setdefault((user_id, device_id), set())
        conn_ids.add(conn_id)
        evicted: list[ConnKey] = []
        while len(conn_ids) > MAX_CONNECTIONS_PER_DEVICE:
            oldest = min(
                (c for c in conn_ids if c != conn_id),
                key=lambda c: self.by_key[(user_id, device_id, c)].used_ms,
            )
            evicted.append((user_id, device_id, oldest))
            self._remove((user_id, device_id, oldest))
        return evicted

    def _remove(self, key: ConnKey) -> None:
        del self.by_key[key]
        device = (key[0], key[1])
        conn_ids = self._by_device.get(device)
        if conn_ids is not None:
            conn_ids.discard(key[2])
            if not conn_ids:
                del self._by_device[device]

    def forget_idle(self, before_ms: int, unsaved: Container[ConnKey]) -> int:
        """Connections last used before `before_ms` whose state the database holds
        leave memory; how many did."""
        idle = [
            key
            for key, c in self.by_key.items()
            if c.used_ms < before_ms and c.saved is not None and key not in unsaved
        ]
        for key in idle:
            self._remove(key)
        return len(idle)

    def touch(self, key: ConnKey, now_ms: int) -> None:
        connection = self.by_key.get(key)
        if connection is not None:
            connection.used_ms = now_ms

    def new_pos_nid(self) -> int:
        nid = self.next_pos_nid
        self.next_pos_nid += 1
        return nid

    def find(self, key: ConnKey, pos_nid: int) -> Position | None:
        connection = self.by_key.get(key)
        if connection is None:
            return None
        return connection.positions.get(pos_nid)

    def install(
        self, key: ConnKey, conn_nid: int, position: Position, now_ms: int
    ) -> tuple[Position, list[ConnKey]]:
        """A position loaded from the database (after a restart, or after its connection
        was idle); the connections of its device it pushed out, as new_connection."""
        connection = self.by_key.get(key)
        evicted: list[ConnKey] = []
        if connection is None or connection.conn_nid != conn_nid:
            connection = Connection(conn_nid, saved=position, saved_tidy=False, used_ms=now_ms)
            evicted = self._put(key, connection)
        connection.positions.setdefault(position.pos_nid, position)
        return connection.positions[position.pos_nid], evicted

    def confirm(self, key: ConnKey, pos_nid: int) -> None:
        """The client came back with `pos_nid`: it never processed any other position."""
        connection = self.by_key.get(key)
        if connection is not None:
            kept = connection.positions.get(pos_nid)
            connection.positions = {} if kept is None else {pos_nid: kept}


_MEMBERS = msgspec.json.Decoder(frozenset[str])
_LISTS = msgspec.json.Decoder(dict[str, tuple[int, tuple[str, ...]]])


def encode_lists(lists: ListsState) -> bytes:
    return msgspec.json.encode(dict(lists))


def from_stored(stored: StoredPosition) -> Position:
    rooms = {
        r.room_id: SentRoom(
            r.stream_pos, r.membership, decode_config(r.config), _MEMBERS.decode(r.members)
        )
        for r in stored.rooms
    }
    return Position(
        stored.pos_nid, stored.stream_pos, stored.typing_serial, _LISTS.decode(stored.lists), rooms
    )


def to_stored(room_id: str, sent: SentRoom, encoded: dict[RoomConfig, bytes]) -> StoredRoom:
    """`encoded`: configs already encoded (the rooms of a list share one)."""
    config = encoded.get(sent.config)
    if config is None:
        config = encoded[sent.config] = encode_config(sent.config)
    return StoredRoom(
        room_id,
        sent.stream_pos,
        sent.membership,
        config,
        msgspec.json.encode(sorted(sent.members)),
    )
