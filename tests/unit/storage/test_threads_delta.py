"""Delta 0008 (threads): existing replies become thread rows; triggers keep them."""

from __future__ import annotations

from pathlib import Path

import apsw

from dendrite_lite.storage import migrations, threads
from tests.unit.storage.old_schema import database_at


def _event(
    conn: apsw.Connection,
    pos: int,
    event_id: str,
    room: str = "!r:hs",
    relates_to: str | None = None,
    rel_type: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO events (event_id, room_id, type, sender, origin_server_ts, depth,"
        " stream_pos, pdu, client, unsigned, relates_to, rel_type)"
        " VALUES (?, ?, 'm.room.message', '@a:hs', 0, ?, ?, x'7b7d', x'7b7d', x'7b7d', ?, ?)",
        (event_id, room, pos, pos, relates_to, rel_type),
    )


def test_existing_replies_are_listed_after_the_upgrade(tmp_path: Path) -> None:
    conn = database_at(tmp_path / "old.db", 7)
    for room in ("!r:hs", "!other:hs"):
        conn.execute(
            "INSERT INTO rooms (room_id, room_version, creator, created_ts)"
            " VALUES (?, '12', '@a:hs', 0)",
            (room,),
        )
    _event(conn, 1, "$root")
    _event(conn, 2, "$reply1", relates_to="$root", rel_type="m.thread")
    _event(conn, 3, "$elsewhere", room="!other:hs")
    _event(conn, 4, "$cross", relates_to="$elsewhere", rel_type="m.thread")  # other room
    _event(conn, 5, "$nested", relates_to="$reply1", rel_type="m.thread")  # root is a reply
    _event(conn, 6, "$reply2", relates_to="$root", rel_type="m.thread")
    migrations.migrate(conn)
    assert threads.recent(conn, "!r:hs", before=100, limit=10) == [("$root", 6)]
    # From now on the triggers keep the row: a new reply moves the thread up...
    _event(conn, 7, "$root2")
    _event(conn, 8, "$reply3", relates_to="$root2", rel_type="m.thread")
    assert threads.recent(conn, "!r:hs", before=100, limit=10) == [("$root2", 8), ("$root", 6)]
    # ...and redacting replies moves it back, or removes it.
    conn.execute("UPDATE events SET redacted_by = '$x' WHERE event_id = '$reply2'")
    assert threads.recent(conn, "!r:hs", before=100, limit=10) == [("$root2", 8), ("$root", 2)]
    conn.execute("UPDATE events SET redacted_by = '$x' WHERE event_id = '$reply3'")
    assert threads.recent(conn, "!r:hs", before=100, limit=10) == [("$root", 2)]
    assert threads.recent(conn, "!r:hs", before=2, limit=10) == []
