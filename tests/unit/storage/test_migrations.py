"""Schema versions: fresh databases get schema.sql, newer databases are refused."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from dendrite_lite.storage import migrations
from dendrite_lite.storage.db import Database


def test_fresh_database_gets_current_schema(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "x.db"))
    assert migrations.migrate(conn) == 0
    assert migrations.schema_version(conn) == migrations.SCHEMA_VERSION
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "devices", "access_tokens", "account_data", "stream_position"} <= tables
    # Running again is a no-op.
    assert migrations.migrate(conn) == migrations.SCHEMA_VERSION


def test_every_version_has_a_migration() -> None:
    assert set(migrations.MIGRATIONS) == set(range(2, migrations.SCHEMA_VERSION + 1))


def test_newer_database_is_refused(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "x.db"))
    conn.pragma("user_version", migrations.SCHEMA_VERSION + 1)
    conn.close()
    database = Database(tmp_path / "x.db")
    with pytest.raises(migrations.SchemaTooNew):
        database.open()


def test_schema_is_strict(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "x.db"))
    migrations.migrate(conn)
    with pytest.raises(apsw.ConstraintError):
        conn.execute("INSERT INTO users (user_id, created_ts) VALUES ('@a:b', 'not a number')")
