"""Schema versions: ``PRAGMA user_version`` says which.

``schema.sql`` is the version-1 baseline and never changes again. Every later change is a
delta file ``schema_deltas/NNNN_name.sql`` whose number is the version it brings the
database to. A fresh database runs the baseline and then every delta, exactly as an old
database does, so the two can never drift apart. Each feature owns its delta file, so
work on separate features never edits the same schema file. Numbers may leave gaps.

All of it runs inside one transaction: a crash mid-upgrade leaves the old version intact.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import apsw

_DELTA_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaTooNew(Exception):
    """The database was written by a newer dendrite-lite; refuse rather than corrupt it."""


def current_schema() -> str:
    """The version-1 baseline."""
    return resources.files("dendrite_lite").joinpath("schema.sql").read_text("utf-8")


@cache
def deltas() -> tuple[tuple[int, str, str], ...]:
    """(version, file name, SQL) of every delta, in version order."""
    found: list[tuple[int, str, str]] = []
    folder = resources.files("dendrite_lite").joinpath("schema_deltas")
    for entry in folder.iterdir():
        match = _DELTA_NAME.match(entry.name)
        if match is None:
            continue
        found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions) or (versions and versions[0] < 2):
        raise RuntimeError(f"schema deltas must have distinct versions >= 2: {versions}")
    return tuple(found)


def schema_version_target() -> int:
    """The version this dendrite-lite writes."""
    found = deltas()
    return found[-1][0] if found else 1


SCHEMA_VERSION = schema_version_target()


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
            conn.execute(current_schema())  # leaves user_version = 1
        for target, _name, sql in deltas():
            if target > max(version, 1):
                conn.execute(sql)
                conn.pragma("user_version", target)
    return version
