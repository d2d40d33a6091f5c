"""Sliding sync connection state saved now and then (saving.py): whatever sequence of
answers, confirmations and restarts came between two saves, the database then holds
the connection's base position and newest answer, each with the rooms memory has."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from dendrite_lite.sliding_sync import saving
from dendrite_lite.sliding_sync.connections import (
    Connection,
    Connections,
    ConnKey,
    Position,
    SentRoom,
    from_stored,
)
from dendrite_lite.sliding_sync.required_state import RoomConfig, StateSpec
from dendrite_lite.storage import migrations
from dendrite_lite.storage import sliding_sync as store
from dendrite_lite.storage.db import Database, DatabaseSettings

USER, DEVICE = "@a:hs", "DEV"
KEY: ConnKey = (USER, DEVICE, "room-list")
CONFIGS = [
    RoomConfig(1, frozenset()),
    RoomConfig(5, frozenset({StateSpec(pairs=(("m.room.name", ""),))})),
]


def _add_device(conn: apsw.Connection) -> None:
    conn.execute("INSERT INTO users (user_id, created_ts) VALUES (?, 0)", (USER,))
    conn.execute(
        "INSERT INTO devices (user_id, device_id, created_ts) VALUES (?, ?, 0)", (USER, DEVICE)
    )


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[apsw.Connection]:
    connection = apsw.Connection(str(tmp_path / "sss.db"))
    migrations.migrate(connection)
    _add_device(connection)
    yield connection
    connection.close()


class Client:
    """What service.SlidingSync does to a connection's memory, without the reads."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.connections = Connections()
        self.connections.start_numbering(0, 0, 1000)
        self.stream = 0

    def start(self) -> Position:
        connection, evicted = self.connections.new_connection(KEY, 1000)
        assert evicted == []
        return self._answer(connection, None, 3)

    def answer(self, base: Position, rooms: int = 1) -> Position | None:
        """An answer built on `base`, or None if its connection no longer holds it."""
        connection = self.connections.by_key[KEY]
        if base.pos_nid not in connection.positions:
            return None
        return self._answer(connection, base, rooms)

    def _answer(self, connection: Connection, base: Position | None, rooms: int) -> Position:
        self.stream += 1
        sent = dict(base.rooms) if base is not None else {}
        for _ in range(rooms):
            room_id = f"!r{self.rng.randrange(12)}"
            members = frozenset(f"@m{self.rng.randrange(4)}:hs" for _ in range(2))
            sent[room_id] = SentRoom(self.stream, "join", self.rng.choice(CONFIGS), members)
        ids = tuple(sorted(sent))[:5]
        position = Position(
            self.connections.new_pos_nid(), self.stream, 0, {"all": (len(sent), ids)}, sent
        )
        connection.positions[position.pos_nid] = position
        return position

    def confirm(self, position: Position) -> None:
        self.connections.confirm(KEY, position.pos_nid)


def _save(conn: apsw.Connection, connections: Connections) -> None:
    connection = connections.by_key[KEY]
    p = saving.plan(KEY, connection)
    assert p is not None
    with conn:
        saving.save(conn, p)
    connection.saved, connection.saved_tidy = p.base, True


def _same(loaded: Position, kept: Position) -> None:
    assert (loaded.stream_pos, loaded.typing_serial) == (kept.stream_pos, kept.typing_serial)
    assert loaded.lists == kept.lists
    assert set(loaded.rooms) == set(kept.rooms)
    for room_id, sent in kept.rooms.items():
        got = loaded.rooms[room_id]
        assert (got.stream_pos, got.membership, got.config, got.members) == (
            sent.stream_pos,
            sent.membership,
            sent.config,
            sent.members,
        ), room_id


def _holds_exactly(conn: apsw.Connection, connections: Connections) -> None:
    """The database holds the connection's base position and its newest answer."""
    connection = connections.by_key[KEY]
    ordered = sorted(connection.positions)
    kept_nids = {ordered[0], ordered[-1]}
    stored = {
        int(nid)
        for (nid,) in conn.execute(
            "SELECT pos_nid FROM sliding_sync_positions WHERE conn_nid = ?",
            (connection.conn_nid,),
        )
    }
    assert stored == kept_nids
    for pos_nid in kept_nids:
        kept = connection.positions[pos_nid]
        loaded = store.load_position(conn, *KEY, pos_nid)
        assert loaded is not None
        _same(from_stored(loaded), kept)
    # A room has its base row and at most the answer's.
    most = max(
        (
            int(n)
            for (n,) in conn.execute(
                "SELECT count(*) FROM sliding_sync_rooms GROUP BY conn_nid, room_id"
            )
        ),
        default=0,
    )
    assert most <= len(kept_nids)
    # Only this connection's rows: an earlier connection of the key is gone.
    assert {int(n) for (n,) in conn.execute("SELECT conn_nid FROM sliding_sync_rooms")} <= {
        connection.conn_nid
    }


def test_a_new_connection_is_saved_whole(conn: apsw.Connection) -> None:
    client = Client(random.Random(1))
    first = client.start()
    client.answer(first, 2)
    _save(conn, client.connections)
    _holds_exactly(conn, client.connections)


def test_saves_follow_confirmations_answers_and_retries(conn: apsw.Connection) -> None:
    client = Client(random.Random(2))
    base = client.start()
    _save(conn, client.connections)
    for _ in range(4):
        answer = client.answer(base)
        assert answer is not None
        retry = client.answer(base)  # the client asked again with the same pos
        assert retry is not None
        _save(conn, client.connections)
        _holds_exactly(conn, client.connections)
        client.confirm(retry)
        base = retry
    _save(conn, client.connections)
    _holds_exactly(conn, client.connections)


def test_many_positions_between_two_saves(conn: apsw.Connection) -> None:
    """Saved only now and then: the database jumps over positions it never held."""
    client = Client(random.Random(3))
    base = client.start()
    _save(conn, client.connections)
    for _ in range(10):
        nxt = client.answer(base, 2)
        assert nxt is not None
        client.confirm(nxt)
        base = nxt
    client.answer(base)
    _save(conn, client.connections)
    _holds_exactly(conn, client.connections)


def test_a_connection_started_over_replaces_the_saved_one(conn: apsw.Connection) -> None:
    client = Client(random.Random(4))
    client.answer(client.start())
    _save(conn, client.connections)
    again = client.start()
    client.answer(again)
    _save(conn, client.connections)
    _holds_exactly(conn, client.connections)
    assert conn.execute("SELECT count(*) FROM sliding_sync_connections").fetchone() == (1,)


@pytest.mark.parametrize("seed", range(20))
def test_random_sequences(conn: apsw.Connection, seed: int) -> None:
    rng = random.Random(seed)
    client = Client(rng)
    live = [client.start()]
    for _ in range(60):
        step = rng.random()
        if step < 0.45:
            made = client.answer(rng.choice(live), rng.randrange(1, 4))
            if made is not None:
                live.append(made)
        elif step < 0.75:
            chosen = rng.choice(live)
            if chosen.pos_nid in client.connections.by_key[KEY].positions:
                client.confirm(chosen)
                live = [chosen]
        elif step < 0.8:
            live = [client.start()]
        else:
            _save(conn, client.connections)
            _holds_exactly(conn, client.connections)
        live = [p for p in live if p.pos_nid in client.connections.by_key[KEY].positions]
    _save(conn, client.connections)
    _holds_exactly(conn, client.connections)


@pytest.mark.parametrize("back_with", ["base", "answer"])
def test_a_position_loaded_after_a_restart_is_saved_on(
    conn: apsw.Connection, back_with: str
) -> None:
    """After a restart the database may hold more than the loaded position (not tidy):
    the next save drops what memory no longer has."""
    client = Client(random.Random(5))
    base = client.start()
    first = client.answer(base)
    second = client.answer(base)
    assert first is not None and second is not None
    _save(conn, client.connections)
    assert store.load_position(conn, *KEY, first.pos_nid) is None  # only the newest answer
    # A restart: memory is empty, the client comes back with a saved pos.
    restarted = Connections()
    restarted.start_numbering(*store.max_ids(conn), 1000)
    back = base if back_with == "base" else second
    stored = store.load_position(conn, *KEY, back.pos_nid)
    assert stored is not None
    loaded, evicted = restarted.install(KEY, stored.conn_nid, from_stored(stored), 1000)
    assert evicted == []
    restarted.confirm(KEY, loaded.pos_nid)
    assert restarted.next_pos_nid > second.pos_nid
    client.connections = restarted
    later = client.answer(loaded, 2)
    assert later is not None
    _save(conn, client.connections)
    _holds_exactly(conn, client.connections)


def test_a_deleted_device_is_not_brought_back(conn: apsw.Connection) -> None:
    client = Client(random.Random(6))
    client.start()
    conn.execute("DELETE FROM devices WHERE user_id = ?", (USER,))
    _save(conn, client.connections)
    assert conn.execute("SELECT count(*) FROM sliding_sync_connections").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM sliding_sync_rooms").fetchone() == (0,)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(reader_threads=1))
    database.open()
    yield database
    database.close()


async def _saved_once(db: Database, seed: int) -> tuple[Client, saving.Saver, Position]:
    """A device, a connection started on it (at 1000 ms, the Client's clock), saved."""
    await db.write(_add_device)
    client = Client(random.Random(seed))
    saver = saving.Saver(db, client.connections)
    base = client.start()
    saver.changed(KEY)
    await saver.save_all()
    return client, saver, base


async def test_the_saver_saves_changed_connections_and_retries_a_failed_save(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, saver, base = await _saved_once(db, 7)
    assert saver.unsaved == 0
    assert await db.read(lambda c: store.load_position(c, *KEY, base.pos_nid)) is not None

    # A save that fails is rolled back, and the connection is saved whole next time.
    real_save = saving.save

    def failing(conn: apsw.Connection, p: saving.SavePlan) -> None:
        real_save(conn, p)
        raise apsw.ConstraintError("disk trouble")

    nxt = client.answer(base)
    assert nxt is not None
    saver.changed(KEY)
    monkeypatch.setattr(saving, "save", failing)
    await saver.save_all()
    monkeypatch.setattr(saving, "save", real_save)
    assert saver.unsaved == 1
    assert client.connections.by_key[KEY].saved is None
    assert await db.read(lambda c: store.load_position(c, *KEY, nxt.pos_nid)) is None
    await saver.save_all()
    assert saver.unsaved == 0
    loaded = await db.read(lambda c: store.load_position(c, *KEY, nxt.pos_nid))
    assert loaded is not None
    _same(from_stored(loaded), nxt)


async def test_a_saved_idle_connection_leaves_memory_and_loads_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # saved; its 1000 ms are long past, but the first sweep ran before it was saved
    client, saver, base = await _saved_once(db, 8)
    assert KEY in client.connections.by_key
    monkeypatch.setattr(saving, "SWEEP_INTERVAL_MS", 0)
    await saver.save_all()  # now saved and idle: it goes
    assert KEY not in client.connections.by_key
    stored = await db.read(lambda c: store.load_position(c, *KEY, base.pos_nid))
    assert stored is not None
    _same(from_stored(stored), base)
