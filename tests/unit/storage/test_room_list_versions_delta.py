"""Delta 0014 (room_list_versions): every change to a user's user_rooms rows raises
their counter, and nothing else does (a room's bump is on the room since delta 0013)."""

from __future__ import annotations

from pathlib import Path

from dendrite_lite.storage import migrations, rooms
from dendrite_lite.storage import sliding_sync as store
from tests.unit.storage.old_schema import database_at

ALICE, BOB = "@alice:hs", "@bob:hs"


def test_the_counter_follows_memberships_and_forgets(tmp_path: Path) -> None:
    conn = database_at(tmp_path / "old.db", 13)
    for room in ("!a:hs", "!b:hs"):
        rooms.insert(conn, room, "12", ALICE, 0)
    rooms.set_membership(conn, ALICE, "!a:hs", "join", 1, 1)
    migrations.migrate(conn)
    # Users with rooms before the upgrade start at 1; users without any at 0.
    assert store.room_list_version(conn, ALICE) == 1
    assert store.room_list_version(conn, BOB) == 0
    seen = {store.room_list_version(conn, ALICE)}

    def changed() -> bool:
        version = store.room_list_version(conn, ALICE)
        new = version not in seen
        seen.add(version)
        return new

    rooms.set_membership(conn, ALICE, "!b:hs", "invite", 2, 2)  # a new row
    assert changed()
    rooms.set_membership(conn, ALICE, "!b:hs", "join", 3, 3)  # a membership change
    assert changed()
    rooms.set_membership(conn, ALICE, "!b:hs", "join", 4, 4)  # a new event, same membership
    assert changed()
    rooms.bump(conn, "!b:hs", 5)  # the room's, not the member's
    assert not changed()
    rooms.set_membership(conn, ALICE, "!b:hs", "leave", 6, 6)
    assert changed()
    rooms.forget(conn, ALICE, "!b:hs")
    assert changed()
    conn.execute("DELETE FROM user_rooms WHERE user_id = ? AND room_id = '!a:hs'", (ALICE,))
    assert changed()
    assert store.room_list_version(conn, BOB) == 0
