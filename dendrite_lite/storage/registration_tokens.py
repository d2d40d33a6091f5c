"""Registration tokens: https://spec.matrix.org/latest/client-server-api/#token-authenticated-registration"""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class RegistrationTokenRow:
    token: str
    uses_allowed: int | None
    completed: int
    expiry_ts: int | None
    created_ts: int

    def is_valid(self, now_ms: int) -> bool:
        if self.expiry_ts is not None and self.expiry_ts <= now_ms:
            return False
        return self.uses_allowed is None or self.completed < self.uses_allowed


_COLUMNS = "token, uses_allowed, completed, expiry_ts, created_ts"


def get(conn: apsw.Connection, token: str) -> RegistrationTokenRow | None:
    for row in conn.execute(
        f"SELECT {_COLUMNS} FROM registration_tokens WHERE token = ?", (token,)
    ):
        return RegistrationTokenRow(*row)
    return None


def insert(
    conn: apsw.Connection,
    token: str,
    uses_allowed: int | None,
    expiry_ts: int | None,
    created_ts: int,
) -> None:
    conn.execute(
        "INSERT INTO registration_tokens (token, uses_allowed, expiry_ts, created_ts)"
        " VALUES (?, ?, ?, ?)",
        (token, uses_allowed, expiry_ts, created_ts),
    )


def list_all(conn: apsw.Connection) -> list[RegistrationTokenRow]:
    return [
        RegistrationTokenRow(*row)
        for row in conn.execute(f"SELECT {_COLUMNS} FROM registration_tokens ORDER BY created_ts")
    ]


def delete(conn: apsw.Connection, token: str) -> bool:
    conn.execute("DELETE FROM registration_tokens WHERE token = ?", (token,))
    return conn.changes() > 0


def consume(conn: apsw.Connection, token: str, now_ms: int) -> bool:
    """Use one of the token's uses; false if it is gone, expired or used up."""
    conn.execute(
        "UPDATE registration_tokens SET completed = completed + 1 WHERE token = ?"
        " AND (expiry_ts IS NULL OR expiry_ts > ?)"
        " AND (uses_allowed IS NULL OR completed < uses_allowed)",
        (token, now_ms),
    )
    return conn.changes() > 0
