"""Third-party identifiers bound to accounts, and their validation sessions.

https://spec.matrix.org/latest/client-server-api/#adding-account-administrative-contact-information
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw

from dendrite_lite.types import UserId


@dataclass(frozen=True)
class ThreepidRow:
    medium: str
    address: str
    user_id: UserId
    validated_ts: int
    added_ts: int


@dataclass(frozen=True)
class ValidationSessionRow:
    sid: str
    purpose: str
    medium: str
    address: str
    client_secret: str
    send_attempt: int
    next_link: str | None
    token_hash: bytes | None
    token_expires_ts: int
    created_ts: int
    validated_ts: int | None
    send_error: str | None


# -- bound addresses ----------------------------------------------------------------------


def owner(conn: apsw.Connection, medium: str, address: str) -> UserId | None:
    row = conn.execute(
        "SELECT user_id FROM user_threepids WHERE medium = ? AND address = ?", (medium, address)
    ).fetchone()
    return UserId(str(row[0])) if row else None


def list_for_user(conn: apsw.Connection, user_id: str) -> list[ThreepidRow]:
    return [
        ThreepidRow(str(r[0]), str(r[1]), UserId(str(r[2])), int(r[3]), int(r[4]))
        for r in conn.execute(
            "SELECT medium, address, user_id, validated_ts, added_ts FROM user_threepids"
            " WHERE user_id = ? ORDER BY added_ts, address",
            (user_id,),
        )
    ]


def bind(
    conn: apsw.Connection,
    user_id: str,
    medium: str,
    address: str,
    validated_ts: int,
    added_ts: int,
) -> None:
    conn.execute(
        "INSERT INTO user_threepids (medium, address, user_id, validated_ts, added_ts)"
        " VALUES (?, ?, ?, ?, ?)",
        (medium, address, user_id, validated_ts, added_ts),
    )


def unbind(conn: apsw.Connection, user_id: str, medium: str, address: str) -> bool:
    conn.execute(
        "DELETE FROM user_threepids WHERE user_id = ? AND medium = ? AND address = ?",
        (user_id, medium, address),
    )
    return conn.changes() > 0


def unbind_all(conn: apsw.Connection, user_id: str) -> None:
    conn.execute("DELETE FROM user_threepids WHERE user_id = ?", (user_id,))


# -- validation sessions ------------------------------------------------------------------

_SESSION_COLUMNS = (
    "sid, purpose, medium, address, client_secret, send_attempt, next_link, token_hash,"
    " token_expires_ts, created_ts, validated_ts, send_error"
)


def _session(row: tuple[object, ...]) -> ValidationSessionRow:
    return ValidationSessionRow(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        int(row[5]),  # type: ignore[call-overload]
        None if row[6] is None else str(row[6]),
        None if row[7] is None else bytes(row[7]),  # type: ignore[call-overload]
        int(row[8]),  # type: ignore[call-overload]
        int(row[9]),  # type: ignore[call-overload]
        None if row[10] is None else int(row[10]),  # type: ignore[call-overload]
        None if row[11] is None else str(row[11]),
    )


def get_session(conn: apsw.Connection, sid: str) -> ValidationSessionRow | None:
    for row in conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM threepid_validation_sessions WHERE sid = ?", (sid,)
    ):
        return _session(row)
    return None


def find_session(
    conn: apsw.Connection, client_secret: str, medium: str, address: str, purpose: str
) -> ValidationSessionRow | None:
    for row in conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM threepid_validation_sessions"
        " WHERE client_secret = ? AND medium = ? AND address = ? AND purpose = ?",
        (client_secret, medium, address, purpose),
    ):
        return _session(row)
    return None


def insert_session(conn: apsw.Connection, row: ValidationSessionRow) -> None:
    conn.execute(
        f"INSERT INTO threepid_validation_sessions ({_SESSION_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.sid,
            row.purpose,
            row.medium,
            row.address,
            row.client_secret,
            row.send_attempt,
            row.next_link,
            row.token_hash,
            row.token_expires_ts,
            row.created_ts,
            row.validated_ts,
            row.send_error,
        ),
    )


def renew_token(
    conn: apsw.Connection,
    sid: str,
    send_attempt: int,
    next_link: str | None,
    token_hash: bytes | None,
    token_expires_ts: int,
) -> None:
    """A higher send_attempt: a new mail with a new token; the old token stops working."""
    conn.execute(
        "UPDATE threepid_validation_sessions SET send_attempt = ?, next_link = ?,"
        " token_hash = ?, token_expires_ts = ?, send_error = NULL WHERE sid = ?",
        (send_attempt, next_link, token_hash, token_expires_ts, sid),
    )


def mark_validated(conn: apsw.Connection, sid: str, validated_ts: int) -> None:
    """The token was right: the session is validated and the token used up."""
    conn.execute(
        "UPDATE threepid_validation_sessions SET validated_ts = ?, token_hash = NULL WHERE sid = ?",
        (validated_ts, sid),
    )


def set_send_error(conn: apsw.Connection, sid: str, error: str) -> None:
    conn.execute(
        "UPDATE threepid_validation_sessions SET send_error = ? WHERE sid = ?", (error, sid)
    )


def delete_session(conn: apsw.Connection, sid: str) -> None:
    conn.execute("DELETE FROM threepid_validation_sessions WHERE sid = ?", (sid,))


def delete_sessions_older_than(conn: apsw.Connection, cutoff_ts: int) -> None:
    conn.execute("DELETE FROM threepid_validation_sessions WHERE created_ts < ?", (cutoff_ts,))
