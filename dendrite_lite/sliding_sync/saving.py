"""Sliding sync connection state saved to SQLite now and then, not behind every answer.

Every answer with news creates a position (connections.py). Written one by one, the
positions cost the writer 0.4-0.6 ms of CPU each: a sixth of an Element X room-list
request's server CPU, and ~9 % of a big room's fan-out's CPU (bench/RESULTS.md,
twentieth session), for a copy that is read only after a restart. So a connection whose
state changed is saved at most once per `save_interval_ms`, with whatever it holds by
then, and every unsaved connection at shutdown: a restart keeps every pos. A crash or
power cut loses the positions given out since the last save; those clients get
M_UNKNOWN_POS and start over, which the MSC allows (the server may forget a connection
at any time).

What a save writes (storage/sliding_sync.py's rows): the connection's oldest position
in memory (the one its client last came back with) and the newest answer built on it,
each as the rooms that differ from what the database holds. The database then holds
exactly those two, as `load_position` reads them. Two answers to one pos exist only
when the client asked twice at once; the older is not saved (a position's rows are all
rows up to its number, so the newer would read the older's), as before this module.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import apsw

from dendrite_lite.clock import now_ms
from dendrite_lite.sliding_sync.connections import (
    IDLE_MS,
    Connection,
    Connections,
    ConnKey,
    Position,
    SentRoom,
    encode_lists,
    to_stored,
)
from dendrite_lite.sliding_sync.required_state import RoomConfig
from dendrite_lite.storage import sliding_sync as store
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.sliding_sync import StoredRoom

log = logging.getLogger(__name__)

# Connections saved at a time, each its own background write: the writer may commit
# them in one batch, and a message sent meanwhile waits for that batch at most (a few ms).
SAVE_CHUNK = 8
# Idle connections are looked for at most this often (a pass reads every connection in
# memory, on the event loop).
SWEEP_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class SavePlan:
    """One connection's save, taken on the event loop (positions are immutable)."""

    key: ConnKey
    conn_nid: int
    created_ms: int
    saved: Position | None  # what the database holds; None: nothing of this connection
    saved_tidy: bool
    base: Position  # the oldest position in memory
    answer: Position | None  # the newest answer built on it


def plan(key: ConnKey, connection: Connection) -> SavePlan | None:
    positions = sorted(connection.positions.values(), key=lambda p: p.pos_nid)
    if not positions:
        return None
    return SavePlan(
        key,
        connection.conn_nid,
        connection.created_ms,
        connection.saved,
        connection.saved_tidy,
        positions[0],
        positions[-1] if len(positions) > 1 else None,
    )


def _differs(sent: SentRoom, before: SentRoom | None) -> bool:
    # Unchanged rooms are the same object from position to position (service._record
    # copies the map); a position loaded after a restart has equal ones.
    return before is None or (sent is not before and sent != before)


def _rows(
    position: Position, against: Position | None, encoded: dict[RoomConfig, bytes]
) -> list[StoredRoom]:
    before = {} if against is None else against.rooms
    return [
        to_stored(room_id, sent, encoded)
        for room_id, sent in position.rooms.items()
        if _differs(sent, before.get(room_id))
    ]


def _add(
    conn: apsw.Connection, conn_nid: int, position: Position, rows: Iterable[StoredRoom]
) -> None:
    store.add_position(
        conn,
        conn_nid,
        position.pos_nid,
        position.stream_pos,
        position.typing_serial,
        encode_lists(position.lists),
        rows,
    )


def save(conn: apsw.Connection, p: SavePlan) -> None:
    """On the writer: make the database hold exactly `p.base` and `p.answer`."""
    user_id, device_id, conn_id = p.key
    encoded: dict[RoomConfig, bytes] = {}
    if p.saved is None:
        # Started over since the last save (or never saved): the key's old rows go.
        store.start_connection(conn, p.conn_nid, user_id, device_id, conn_id, p.created_ms)
        _add(conn, p.conn_nid, p.base, _rows(p.base, None, encoded))
    else:
        # Back to the saved position alone (answers saved with it dropped)...
        store.confirm_position(conn, p.conn_nid, p.saved.pos_nid, () if p.saved_tidy else None)
        if p.base is not p.saved:
            # ...then on to the base: a newer position, built on the saved one.
            rows = _rows(p.base, p.saved, encoded)
            _add(conn, p.conn_nid, p.base, rows)
            store.confirm_position(conn, p.conn_nid, p.base.pos_nid, [r.room_id for r in rows])
    if p.answer is not None:
        _add(conn, p.conn_nid, p.answer, _rows(p.answer, p.base, encoded))


class Saver:
    """The connections changed since their last save, and the saving of them."""

    def __init__(self, db: Database, connections: Connections) -> None:
        self.db = db
        self.connections = connections
        self._unsaved: dict[ConnKey, None] = {}  # insertion-ordered: oldest change first
        self._swept_ms = 0

    def changed(self, key: ConnKey) -> None:
        self._unsaved[key] = None

    @property
    def unsaved(self) -> int:
        return len(self._unsaved)

    async def save_all(self) -> None:
        """Save every connection changed so far, SAVE_CHUNK at a time (and let those
        idle for IDLE_MS leave memory: the database holds them)."""
        now = now_ms()
        if now - self._swept_ms >= SWEEP_INTERVAL_MS:
            self._swept_ms = now
            self.connections.forget_idle(now - IDLE_MS, self._unsaved)
        while self._unsaved:
            keys = list(itertools.islice(self._unsaved, SAVE_CHUNK))
            units: list[tuple[ConnKey, Connection, asyncio.Future[None]]] = []
            for key in keys:
                del self._unsaved[key]
                connection = self.connections.by_key.get(key)
                if connection is None:
                    continue  # its device is gone, and its rows with it
                p = plan(key, connection)
                if p is None:
                    continue
                # What the database will hold once the unit is committed; units are
                # committed in order, so the next plan may build on it already.
                connection.saved, connection.saved_tidy = p.base, True
                units.append((key, connection, self.db.write_soon(functools.partial(save, p=p))))
            failed = False
            for key, connection, unit in units:
                try:
                    await unit
                except Exception:
                    log.exception("saving sliding sync connection state failed")
                    failed = True
                    # The unit was rolled back: this connection is saved whole next time.
                    connection.saved = None
                    if self.connections.by_key.get(key) is connection:
                        self.changed(key)
            if failed:
                return  # the rest waits for the next save
