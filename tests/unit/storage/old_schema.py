"""A database as an older dendrite-lite left it, for the tests of a schema delta."""

from __future__ import annotations

from pathlib import Path

import apsw

from dendrite_lite.storage import migrations


def database_at(path: Path, version: int) -> apsw.Connection:
    """A new database file at schema `version` (the baseline and the deltas up to it),
    with foreign keys on as the server has them."""
    conn = apsw.Connection(str(path))
    conn.pragma("foreign_keys", True)
    conn.execute(migrations.current_schema())
    for delta_version, _name, sql in migrations.deltas():
        if delta_version <= version:
            conn.execute(sql)
            conn.pragma("user_version", delta_version)
    return conn
