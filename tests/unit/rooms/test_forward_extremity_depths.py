"""A new event's depth comes from its prev events' depths kept with the forward
extremities (schema delta 0016), and from the events themselves where one is not known."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import msgspec
import pytest

from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS
from dendrite_lite.events.signing import ServerSigningKey
from dendrite_lite.rooms.pipeline import EventCreator
from dendrite_lite.storage import events, migrations
from tests.unit.storage.old_schema import database_at

ALICE = "@alice:hs"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[apsw.Connection]:
    connection = apsw.Connection(str(tmp_path / "depth.db"))
    migrations.migrate(connection)
    connection.execute("INSERT INTO users (user_id, created_ts) VALUES (?, 0)", (ALICE,))
    yield connection
    connection.close()


def _depth(conn: apsw.Connection, event_id: str) -> int:
    return events.depths(conn, [event_id])[event_id]


def test_depths_follow_the_extremities(conn: apsw.Connection) -> None:
    creator = EventCreator("hs", ServerSigningKey.generate())
    create = creator.create_room(
        conn, KNOWN_ROOM_VERSIONS["10"], ALICE, {"creator": ALICE, "room_version": "10"}, 1
    )
    room = create.room_id
    join = creator.create(
        conn, room, ALICE, "m.room.member", {"membership": "join"}, 2, state_key=ALICE
    )
    assert events.forward_extremities(conn, room) == {join.event_id: 2}
    first = creator.create(conn, room, ALICE, "m.room.message", {"body": "1"}, 3)
    assert _depth(conn, first.event_id) == 3
    assert events.forward_extremities(conn, room) == {first.event_id: 3}
    # An extremity whose depth is not known (a row from before the delta whose event was
    # missing) is looked up in events.
    conn.execute("UPDATE forward_extremities SET depth = NULL WHERE room_id = ?", (room,))
    second = creator.create(conn, room, ALICE, "m.room.message", {"body": "2"}, 4)
    assert _depth(conn, second.event_id) == 4
    pdu = msgspec.json.decode(
        conn.execute("SELECT pdu FROM events WHERE event_id = ?", (second.event_id,)).fetchone()[0]
    )
    assert pdu["depth"] == 4 and pdu["prev_events"] == [first.event_id]


def test_the_upgrade_fills_in_existing_depths(tmp_path: Path) -> None:
    conn = database_at(tmp_path / "old.db", 15)
    conn.execute(
        "INSERT INTO rooms (room_id, room_version, creator, created_ts)"
        " VALUES ('!r:hs', '10', ?, 0)",
        (ALICE,),
    )
    conn.execute(
        "INSERT INTO events (event_id, room_id, type, sender, origin_server_ts, depth,"
        " stream_pos, pdu, client, unsigned)"
        " VALUES ('$known', '!r:hs', 'm.room.message', ?, 0, 7, 1, x'7b7d', x'7b7d', x'7b7d')",
        (ALICE,),
    )
    conn.execute(
        "INSERT INTO forward_extremities (room_id, event_id)"
        " VALUES ('!r:hs', '$known'), ('!r:hs', '$missing')"
    )
    migrations.migrate(conn)
    assert events.forward_extremities(conn, "!r:hs") == {"$known": 7, "$missing": None}
