"""Server-side key backups: versions and backed-up session keys, SQL only.

https://spec.matrix.org/latest/client-server-api/#server-side-key-backups

Each version row keeps its key count and an etag counter, both changed in the same
transaction as the keys, so reading a version's metadata never counts its keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import apsw


@dataclass(frozen=True)
class VersionRow:
    version: int
    algorithm: str
    auth_data: bytes
    etag: int
    count: int
    deleted: bool


@dataclass(frozen=True)
class KeyRow:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: bytes


# (room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
NewKey = tuple[str, str, int, int, bool, bytes]

_VERSION_COLUMNS = "version, algorithm, auth_data, etag, key_count, deleted"


def _version_row(row: Any) -> VersionRow:
    version, algorithm, auth_data, etag, count, deleted = row
    return VersionRow(
        int(version), str(algorithm), bytes(auth_data), int(etag), int(count), bool(deleted)
    )


def get_version(conn: apsw.Connection, user_id: str, version: int) -> VersionRow | None:
    """The version, deleted or not (callers decide what a deleted one means)."""
    for row in conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM key_backup_versions WHERE user_id = ? AND version = ?",
        (user_id, version),
    ):
        return _version_row(row)
    return None


def current_version(conn: apsw.Connection, user_id: str) -> VersionRow | None:
    """The most recently created version that is not deleted."""
    for row in conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM key_backup_versions"
        " WHERE user_id = ? AND deleted = 0 ORDER BY version DESC LIMIT 1",
        (user_id,),
    ):
        return _version_row(row)
    return None


def create_version(conn: apsw.Connection, user_id: str, algorithm: str, auth_data: bytes) -> int:
    """A new version, numbered above every version the user ever had (deleted ones too)."""
    for (version,) in conn.execute(
        "INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data)"
        " SELECT ?, coalesce(max(version), 0) + 1, ?, ? FROM key_backup_versions"
        " WHERE user_id = ? RETURNING version",
        (user_id, algorithm, auth_data, user_id),
    ):
        return int(version)
    raise RuntimeError("INSERT ... RETURNING returned nothing")


def update_auth_data(conn: apsw.Connection, user_id: str, version: int, auth_data: bytes) -> None:
    conn.execute(
        "UPDATE key_backup_versions SET auth_data = ? WHERE user_id = ? AND version = ?",
        (auth_data, user_id, version),
    )


def mark_deleted(conn: apsw.Connection, user_id: str, version: int) -> None:
    """Delete a version's keys and mark it deleted; the row stays so its number is not reused."""
    conn.execute(
        "DELETE FROM key_backup_keys WHERE user_id = ? AND version = ?", (user_id, version)
    )
    conn.execute(
        "UPDATE key_backup_versions SET deleted = 1, key_count = 0, etag = etag + 1,"
        " auth_data = CAST('{}' AS BLOB) WHERE user_id = ? AND version = ?",
        (user_id, version),
    )


def _bump(conn: apsw.Connection, user_id: str, version: int, count_delta: int) -> tuple[int, int]:
    for etag, count in conn.execute(
        "UPDATE key_backup_versions SET etag = etag + 1, key_count = key_count + ?"
        " WHERE user_id = ? AND version = ? RETURNING etag, key_count",
        (count_delta, user_id, version),
    ):
        return int(etag), int(count)
    raise RuntimeError("key backup version row is missing")


def store_keys(
    conn: apsw.Connection, user_id: str, version: VersionRow, keys: list[NewKey]
) -> tuple[int, int]:
    """Store keys, keeping a stored key unless the new one is better; (etag, count) after.

    Two set-based passes, whatever the number of keys: new sessions are inserted, then
    stored sessions are overwritten where the spec's rule prefers the upload:
    ``is_verified`` true beats false; then the lower ``first_message_index``; then the
    lower ``forwarded_count``. A key equal on all three stays as it is. The etag moves
    only when something changed.
    """
    rows = [
        (user_id, version.version, room, session, index, forwarded, int(verified), data)
        for room, session, index, forwarded, verified, data in keys
    ]
    before = conn.total_changes()
    conn.executemany(
        "INSERT INTO key_backup_keys (user_id, version, room_id, session_id,"
        " first_message_index, forwarded_count, is_verified, session_data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, version, room_id, session_id) DO NOTHING",
        rows,
    )
    inserted = conn.total_changes() - before
    # Rows inserted just now equal their upload, so they are never "better" than it.
    conn.executemany(
        "UPDATE key_backup_keys SET first_message_index = ?5, forwarded_count = ?6,"
        " is_verified = ?7, session_data = ?8"
        " WHERE user_id = ?1 AND version = ?2 AND room_id = ?3 AND session_id = ?4"
        " AND (?7 > is_verified OR (?7 = is_verified AND (?5 < first_message_index"
        " OR (?5 = first_message_index AND ?6 < forwarded_count))))",
        rows,
    )
    changed = conn.total_changes() - before
    if changed == 0:
        return version.etag, version.count
    return _bump(conn, user_id, version.version, inserted)


def delete_keys(
    conn: apsw.Connection,
    user_id: str,
    version: VersionRow,
    room_id: str | None = None,
    session_id: str | None = None,
) -> tuple[int, int]:
    """Delete the version's keys (of one room, or one session); (etag, count) after."""
    sql = "DELETE FROM key_backup_keys WHERE user_id = ? AND version = ?"
    params: list[object] = [user_id, version.version]
    if room_id is not None:
        sql += " AND room_id = ?"
        params.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
    conn.execute(sql, params)
    deleted = conn.changes()
    if deleted == 0:
        return version.etag, version.count
    return _bump(conn, user_id, version.version, -deleted)


def get_keys(
    conn: apsw.Connection,
    user_id: str,
    version: int,
    room_id: str | None = None,
    session_id: str | None = None,
) -> list[KeyRow]:
    """The version's keys (of one room, or one session), ordered by room and session."""
    sql = (
        "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,"
        " session_data FROM key_backup_keys WHERE user_id = ? AND version = ?"
    )
    params: list[object] = [user_id, version]
    if room_id is not None:
        sql += " AND room_id = ?"
        params.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
    sql += " ORDER BY room_id, session_id"
    return [
        KeyRow(str(room), str(session), int(index), int(forwarded), bool(verified), bytes(data))
        for room, session, index, forwarded, verified, data in conn.execute(sql, params)
    ]


def delete_all(conn: apsw.Connection, user_id: str) -> None:
    """Every backup of a deactivated account, versions and keys."""
    conn.execute("DELETE FROM key_backup_versions WHERE user_id = ?", (user_id,))
