"""The to-device inbox: https://spec.matrix.org/latest/client-server-api/#send-to-device-messaging"""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class ToDeviceRow:
    stream_pos: int
    sender: str
    type: str
    content: bytes


def insert_many(
    conn: apsw.Connection,
    position: int,
    messages: list[tuple[str, str, str, str, bytes]],
) -> None:
    """messages: (user_id, device_id, sender, type, content JSON)."""
    conn.executemany(
        "INSERT INTO to_device_inbox (stream_pos, seq, user_id, device_id, sender, type, content)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(position, seq, *message) for seq, message in enumerate(messages)],
    )


def pending(
    conn: apsw.Connection, user_id: str, device_id: str, after: int, upto: int, limit: int
) -> list[ToDeviceRow]:
    return [
        ToDeviceRow(int(pos), str(sender), str(type_), bytes(content))
        for pos, sender, type_, content in conn.execute(
            "SELECT stream_pos, sender, type, content FROM to_device_inbox"
            " WHERE user_id = ? AND device_id = ? AND stream_pos > ? AND stream_pos <= ?"
            " ORDER BY stream_pos, seq LIMIT ?",
            (user_id, device_id, after, upto, limit),
        )
    ]


def has_acknowledged(conn: apsw.Connection, user_id: str, device_id: str, upto: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND stream_pos <= ?"
            " LIMIT 1",
            (user_id, device_id, upto),
        ).fetchone()
        is not None
    )


def delete_acknowledged(conn: apsw.Connection, user_id: str, device_id: str, upto: int) -> None:
    conn.execute(
        "DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND stream_pos <= ?",
        (user_id, device_id, upto),
    )


def txn_seen(conn: apsw.Connection, sender: str, device_id: str, txn_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM to_device_txns WHERE sender = ? AND device_id = ? AND txn_id = ?",
            (sender, device_id, txn_id),
        ).fetchone()
        is not None
    )


def record_txn(conn: apsw.Connection, sender: str, device_id: str, txn_id: str, now: int) -> None:
    conn.execute(
        "INSERT INTO to_device_txns (sender, device_id, txn_id, created_ts) VALUES (?, ?, ?, ?)",
        (sender, device_id, txn_id, now),
    )
