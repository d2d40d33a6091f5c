"""Schema versions: ``PRAGMA user_version`` says which; ``schema.sql`` is the newest.

A fresh database runs schema.sql. An older one runs each forward migration in turn,
inside the writer's transaction, so a crash mid-upgrade leaves the old version intact.
Each migration is tested on a database made by the previous version's schema.
"""

from __future__ import annotations

from importlib import resources

import apsw

SCHEMA_VERSION = 1

# version -> SQL that upgrades a database at version-1 to version.
MIGRATIONS: dict[int, str] = {}


class SchemaTooNew(Exception):
    """The database was written by a newer dendrite-lite; refuse rather than corrupt it."""


def current_schema() -> str:
    return resources.files("dendrite_lite").joinpath("schema.sql").read_text("utf-8")


def schema_version(conn: apsw.Connection) -> int:
    return int(conn.pragma("user_version"))


def migrate(conn: apsw.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it started at."""
    with conn:  # one transaction: all or nothing
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"database schema version {version} is newer than this dendrite-lite "
                f"({SCHEMA_VERSION}); upgrade dendrite-lite"
            )
        if version == 0:
            conn.execute(current_schema())
        else:
            for target in range(version + 1, SCHEMA_VERSION + 1):
                conn.execute(MIGRATIONS[target])
                conn.pragma("user_version", target)
    return version
