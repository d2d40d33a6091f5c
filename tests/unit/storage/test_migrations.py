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


def test_deltas_are_numbered_and_reach_the_target() -> None:
    versions = [version for version, _, _ in migrations.deltas()]
    assert versions == sorted(set(versions))
    assert all(version >= 2 for version in versions)
    assert (versions[-1] if versions else 1) == migrations.SCHEMA_VERSION


def _schema(conn: apsw.Connection) -> list[tuple[str, str]]:
    return list(
        conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
        )
    )


def test_version_1_database_upgrades_to_the_fresh_schema(tmp_path: Path) -> None:
    """An installation made by the first release ends with exactly a fresh schema."""
    old = apsw.Connection(str(tmp_path / "old.db"))
    old.execute(migrations.current_schema())
    assert migrations.schema_version(old) == 1
    old.execute("INSERT INTO users (user_id, created_ts) VALUES ('@kept:example.org', 1)")
    assert migrations.migrate(old) == 1
    assert migrations.schema_version(old) == migrations.SCHEMA_VERSION
    assert list(old.execute("SELECT user_id FROM users")) == [("@kept:example.org",)]
    fresh = apsw.Connection(str(tmp_path / "fresh.db"))
    migrations.migrate(fresh)
    assert _schema(old) == _schema(fresh)


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
