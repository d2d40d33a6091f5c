"""A sliding sync connection's stored positions: what a confirmation keeps and drops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from dendrite_lite.storage import migrations
from dendrite_lite.storage import sliding_sync as store
from dendrite_lite.storage.sliding_sync import StoredRoom

USER, DEVICE, CONN = "@a:hs", "DEV", "room-list"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[apsw.Connection]:
    connection = apsw.Connection(str(tmp_path / "sss.db"))
    migrations.migrate(connection)
    connection.execute("INSERT INTO users (user_id, created_ts) VALUES (?, 0)", (USER,))
    connection.execute(
        "INSERT INTO devices (user_id, device_id, created_ts) VALUES (?, ?, 0)", (USER, DEVICE)
    )
    store.start_connection(connection, 1, USER, DEVICE, CONN, 0)
    yield connection
    connection.close()


def _room(room_id: str, stream_pos: int) -> StoredRoom:
    return StoredRoom(room_id, stream_pos, "join", b"{}", b"[]")


def _add(conn: apsw.Connection, pos_nid: int, rooms: dict[str, int]) -> None:
    store.add_position(
        conn, 1, pos_nid, pos_nid * 10, 0, b"{}", [_room(r, s) for r, s in rooms.items()]
    )


def _rows(conn: apsw.Connection) -> set[tuple[str, int]]:
    return {
        (str(room_id), int(pos_nid))
        for room_id, pos_nid in conn.execute(
            "SELECT room_id, pos_nid FROM sliding_sync_rooms WHERE conn_nid = 1"
        )
    }


def _state(conn: apsw.Connection, pos_nid: int) -> dict[str, int]:
    loaded = store.load_position(conn, USER, DEVICE, CONN, pos_nid)
    assert loaded is not None
    return {r.room_id: r.stream_pos for r in loaded.rooms}


@pytest.mark.parametrize("known", [True, False], ids=["rooms known", "after a restart"])
def test_a_confirmation_keeps_one_row_per_room(conn: apsw.Connection, known: bool) -> None:
    _add(conn, 1, {"!a": 1, "!b": 1})
    store.confirm_position(conn, 1, 1, {"!a", "!b"} if known else None)
    _add(conn, 2, {"!a": 2})
    store.confirm_position(conn, 1, 2, {"!a"} if known else None)
    assert _rows(conn) == {("!a", 2), ("!b", 1)}
    assert _state(conn, 2) == {"!a": 2, "!b": 1}
    _add(conn, 3, {"!b": 3, "!c": 3})
    store.confirm_position(conn, 1, 3, {"!b", "!c"} if known else None)
    assert _rows(conn) == {("!a", 2), ("!b", 3), ("!c", 3)}
    assert _state(conn, 3) == {"!a": 2, "!b": 3, "!c": 3}


@pytest.mark.parametrize("known", [True, False], ids=["rooms known", "after a restart"])
def test_answers_the_client_never_built_on_leave_nothing(
    conn: apsw.Connection, known: bool
) -> None:
    _add(conn, 1, {"!a": 1})
    store.confirm_position(conn, 1, 1, {"!a"} if known else None)
    # Two answers built on position 1 (the client asked twice) and it goes on from the
    # second: the first's rooms are not part of what it has.
    _add(conn, 2, {"!b": 2})
    _add(conn, 3, {"!a": 3})
    store.confirm_position(conn, 1, 3, {"!a"} if known else None)
    assert _rows(conn) == {("!a", 3)}
    assert _state(conn, 3) == {"!a": 3}
    assert store.load_position(conn, USER, DEVICE, CONN, 2) is None


def test_going_back_to_a_position_drops_the_later_ones(conn: apsw.Connection) -> None:
    _add(conn, 1, {"!a": 1})
    store.confirm_position(conn, 1, 1, {"!a"})
    _add(conn, 2, {"!a": 2, "!b": 2})
    store.confirm_position(conn, 1, 1, {"!a"})  # the client asked with 1 again
    assert _rows(conn) == {("!a", 1)}
    assert store.load_position(conn, USER, DEVICE, CONN, 2) is None
