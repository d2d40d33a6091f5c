"""Dehydrated devices (MSC3814), SQL only: the user's one dehydrated device, the keys
uploaded with it, and the page-by-page read of its to-device inbox."""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class DehydratedDeviceRow:
    device_id: str
    device_data: bytes


@dataclass(frozen=True)
class InboxMessage:
    stream_pos: int
    seq: int
    sender: str
    type: str
    content: bytes


def get(conn: apsw.Connection, user_id: str) -> DehydratedDeviceRow | None:
    for device_id, device_data in conn.execute(
        "SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = ?", (user_id,)
    ):
        return DehydratedDeviceRow(str(device_id), bytes(device_data))
    return None


def insert(
    conn: apsw.Connection, user_id: str, device_id: str, device_data: bytes, created_ts: int
) -> None:
    """Record the dehydrated device; its `devices` row must exist already."""
    conn.execute(
        "INSERT INTO dehydrated_devices (user_id, device_id, device_data, created_ts)"
        " VALUES (?, ?, ?, ?)",
        (user_id, device_id, device_data, created_ts),
    )


def delete_inbox(conn: apsw.Connection, user_id: str, device_id: str) -> None:
    """Drop every to-device message waiting for the device (it is going away)."""
    conn.execute(
        "DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    )


def inbox_page(
    conn: apsw.Connection, user_id: str, device_id: str, after: tuple[int, int], limit: int
) -> list[InboxMessage]:
    """Up to `limit` messages for the device after (stream_pos, seq), oldest first."""
    return [
        InboxMessage(int(pos), int(seq), str(sender), str(type_), bytes(content))
        for pos, seq, sender, type_, content in conn.execute(
            "SELECT stream_pos, seq, sender, type, content FROM to_device_inbox"
            " WHERE user_id = ? AND device_id = ? AND (stream_pos, seq) > (?, ?)"
            " ORDER BY stream_pos, seq LIMIT ?",
            (user_id, device_id, after[0], after[1], limit),
        )
    ]
