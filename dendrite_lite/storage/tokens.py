"""Access and refresh tokens, stored as SHA-256 digests of the random token."""

from __future__ import annotations

from dataclasses import dataclass

import apsw

from dendrite_lite.types import DeviceId, UserId


@dataclass(frozen=True)
class AccessTokenRow:
    user_id: UserId
    device_id: DeviceId
    expires_ts: int | None
    replaces_refresh_id: int | None
    is_guest: bool
    deactivated: bool
    locked: bool
    suspended: bool
    is_admin: bool


@dataclass(frozen=True)
class RefreshTokenRow:
    id: int
    user_id: UserId
    device_id: DeviceId
    expires_ts: int | None


def lookup_access(conn: apsw.Connection, token_hash: bytes) -> AccessTokenRow | None:
    for row in conn.execute(
        "SELECT t.user_id, t.device_id, t.expires_ts, t.replaces_refresh_id,"
        " u.is_guest, u.deactivated, u.locked, u.suspended, u.is_admin"
        " FROM access_tokens AS t JOIN users AS u ON u.user_id = t.user_id"
        " WHERE t.token_hash = ?",
        (token_hash,),
    ):
        return AccessTokenRow(
            UserId(row[0]),
            DeviceId(row[1]),
            row[2],
            row[3],
            bool(row[4]),
            bool(row[5]),
            bool(row[6]),
            bool(row[7]),
            bool(row[8]),
        )
    return None


def insert_access(
    conn: apsw.Connection,
    token_hash: bytes,
    user_id: UserId,
    device_id: DeviceId,
    created_ts: int,
    expires_ts: int | None,
    refresh_token_id: int | None = None,
    replaces_refresh_id: int | None = None,
) -> None:
    conn.execute(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts,"
        " refresh_token_id, replaces_refresh_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            token_hash,
            user_id,
            device_id,
            created_ts,
            expires_ts,
            refresh_token_id,
            replaces_refresh_id,
        ),
    )


def insert_refresh(
    conn: apsw.Connection,
    token_hash: bytes,
    user_id: UserId,
    device_id: DeviceId,
    created_ts: int,
    expires_ts: int | None,
) -> int:
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts, expires_ts)"
        " VALUES (?, ?, ?, ?, ?)",
        (token_hash, user_id, device_id, created_ts, expires_ts),
    )
    return conn.last_insert_rowid()


def lookup_refresh(conn: apsw.Connection, token_hash: bytes) -> RefreshTokenRow | None:
    for row in conn.execute(
        "SELECT id, user_id, device_id, expires_ts FROM refresh_tokens WHERE token_hash = ?",
        (token_hash,),
    ):
        return RefreshTokenRow(int(row[0]), UserId(row[1]), DeviceId(row[2]), row[3])
    return None


def delete_refresh(conn: apsw.Connection, refresh_id: int) -> None:
    """Revoke a refresh token and the access tokens it issued."""
    conn.execute("DELETE FROM access_tokens WHERE refresh_token_id = ?", (refresh_id,))
    conn.execute("DELETE FROM refresh_tokens WHERE id = ?", (refresh_id,))


def confirm_rotation(conn: apsw.Connection, token_hash: bytes, old_refresh_id: int) -> None:
    """The new pair was used: the refresh token it replaced is now revoked."""
    delete_refresh(conn, old_refresh_id)
    conn.execute(
        "UPDATE access_tokens SET replaces_refresh_id = NULL WHERE token_hash = ?", (token_hash,)
    )


def confirm_refresh_use(conn: apsw.Connection, refresh_id: int) -> None:
    """The refresh token was used: the refresh token its pair replaced is now revoked."""
    replaced = [
        int(old_id)
        for (old_id,) in conn.execute(
            "SELECT replaces_refresh_id FROM access_tokens"
            " WHERE refresh_token_id = ? AND replaces_refresh_id IS NOT NULL",
            (refresh_id,),
        )
    ]
    for old_id in replaced:
        delete_refresh(conn, old_id)
    conn.execute(
        "UPDATE access_tokens SET replaces_refresh_id = NULL WHERE refresh_token_id = ?",
        (refresh_id,),
    )


def delete_access(conn: apsw.Connection, token_hash: bytes) -> None:
    conn.execute("DELETE FROM access_tokens WHERE token_hash = ?", (token_hash,))


def revoke_device(conn: apsw.Connection, user_id: str, device_id: str) -> None:
    """Every token of the device goes; the device itself stays (a login reusing it)."""
    conn.execute(
        "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    )
    conn.execute(
        "DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    )
