"""Delta 0010 (ignored_users): existing ignore lists are indexed; triggers keep them."""

from __future__ import annotations

from pathlib import Path

import apsw
import msgspec

from dendrite_lite.storage import account_data, migrations
from tests.unit.storage.old_schema import database_at

ALICE, BOB, CAROL, DAVE = "@alice:hs", "@bob:hs", "@carol:hs", "@dave:hs"
IGNORE = "m.ignored_user_list"


def _ignorers_of(conn: apsw.Connection, user_id: str) -> set[str]:
    return {
        str(row[0])
        for row in conn.execute(
            "SELECT ignorer_user_id FROM ignored_users WHERE ignored_user_id = ?", (user_id,)
        )
    }


def _ignore(conn: apsw.Connection, user_id: str, content: object, position: int) -> None:
    raw = content if isinstance(content, bytes) else msgspec.json.encode(content)
    account_data.upsert(conn, user_id, account_data.GLOBAL, IGNORE, raw, position)


def _old_database(tmp_path: Path) -> apsw.Connection:
    conn = database_at(tmp_path / "old.db", 9)
    for user_id in (ALICE, BOB, CAROL, DAVE):
        conn.execute("INSERT INTO users (user_id, created_ts) VALUES (?, 0)", (user_id,))
    return conn


def test_the_upgrade_indexes_existing_lists_and_skips_malformed_ones(tmp_path: Path) -> None:
    conn = _old_database(tmp_path)
    _ignore(conn, ALICE, {"ignored_users": {CAROL: {}, DAVE: {}}}, 1)
    _ignore(conn, BOB, {"ignored_users": [CAROL]}, 2)  # not an object: ignores nobody
    _ignore(conn, DAVE, b"not json", 3)
    # A room's account data of the same type is not an ignore list.
    account_data.upsert(conn, CAROL, "!r:hs", IGNORE, b'{"ignored_users": {"@dave:hs": {}}}', 4)
    migrations.migrate(conn)
    assert _ignorers_of(conn, CAROL) == {ALICE}
    assert _ignorers_of(conn, DAVE) == {ALICE}


def test_triggers_follow_every_change_of_a_list(tmp_path: Path) -> None:
    conn = _old_database(tmp_path)
    migrations.migrate(conn)
    _ignore(conn, ALICE, {"ignored_users": {CAROL: {}}}, 1)
    _ignore(conn, BOB, {"ignored_users": {CAROL: {}, DAVE: {}}}, 2)
    assert _ignorers_of(conn, CAROL) == {ALICE, BOB}
    # A new list replaces the old one.
    _ignore(conn, BOB, {"ignored_users": {DAVE: {}}}, 3)
    assert _ignorers_of(conn, CAROL) == {ALICE}
    assert _ignorers_of(conn, DAVE) == {BOB}
    # Malformed content is stored as before and ignores nobody; it does not fail the write.
    _ignore(conn, BOB, b"[", 4)
    assert account_data.get(conn, BOB, account_data.GLOBAL, IGNORE) == b"["
    assert _ignorers_of(conn, DAVE) == set()
    # Other account data leaves the table alone.
    account_data.upsert(conn, ALICE, account_data.GLOBAL, "m.direct", b"{}", 5)
    assert _ignorers_of(conn, CAROL) == {ALICE}
    # Deleting the list (here through the user's deletion and its cascade) unignores.
    conn.execute("DELETE FROM users WHERE user_id = ?", (ALICE,))
    assert _ignorers_of(conn, CAROL) == set()
