"""Local accounts."""

from __future__ import annotations

from dataclasses import dataclass

import apsw

from dendrite_lite.types import UserId


@dataclass(frozen=True)
class UserRow:
    user_id: UserId
    password_hash: str | None
    created_ts: int
    is_admin: bool
    is_guest: bool
    deactivated: bool
    locked: bool
    suspended: bool


_COLUMNS = "user_id, password_hash, created_ts, is_admin, is_guest, deactivated, locked, suspended"


def _row(row: tuple[object, ...]) -> UserRow:
    return UserRow(
        UserId(str(row[0])),
        row[1] if row[1] is None else str(row[1]),
        int(row[2]),  # type: ignore[call-overload]
        bool(row[3]),
        bool(row[4]),
        bool(row[5]),
        bool(row[6]),
        bool(row[7]),
    )


def get(conn: apsw.Connection, user_id: str) -> UserRow | None:
    for row in conn.execute(f"SELECT {_COLUMNS} FROM users WHERE user_id = ?", (user_id,)):
        return _row(row)
    return None


def exists(conn: apsw.Connection, user_id: str) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is not None


def insert(
    conn: apsw.Connection,
    user_id: UserId,
    password_hash: str | None,
    created_ts: int,
    *,
    is_admin: bool = False,
    is_guest: bool = False,
) -> None:
    conn.execute(
        "INSERT INTO users (user_id, password_hash, created_ts, is_admin, is_guest)"
        " VALUES (?, ?, ?, ?, ?)",
        (user_id, password_hash, created_ts, int(is_admin), int(is_guest)),
    )


def set_password_hash(conn: apsw.Connection, user_id: UserId, password_hash: str | None) -> None:
    conn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id))


def set_admin(conn: apsw.Connection, user_id: UserId, is_admin: bool) -> bool:
    conn.execute("UPDATE users SET is_admin = ? WHERE user_id = ?", (int(is_admin), user_id))
    return conn.changes() > 0


def mark_deactivated(conn: apsw.Connection, user_id: UserId) -> None:
    conn.execute(
        "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?", (user_id,)
    )


def list_all(
    conn: apsw.Connection, *, include_deactivated: bool = True, limit: int = 1000, offset: int = 0
) -> list[UserRow]:
    where = "" if include_deactivated else "WHERE deactivated = 0"
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM users {where} ORDER BY user_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
    ]


def count(conn: apsw.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM users WHERE deactivated = 0").fetchone()[0])  # type: ignore[index]
