"""The server's ed25519 signing keys."""

from __future__ import annotations

import apsw


def insert(conn: apsw.Connection, key_id: str, seed: bytes, created_ts: int) -> None:
    conn.execute(
        "INSERT INTO server_signing_keys (key_id, seed, created_ts) VALUES (?, ?, ?)",
        (key_id, seed, created_ts),
    )


def current(conn: apsw.Connection) -> tuple[str, bytes] | None:
    for key_id, seed in conn.execute(
        "SELECT key_id, seed FROM server_signing_keys WHERE expired_ts IS NULL"
        " ORDER BY created_ts DESC LIMIT 1"
    ):
        return str(key_id), bytes(seed)
    return None
