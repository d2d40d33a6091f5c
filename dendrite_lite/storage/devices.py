"""Devices of local users."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import apsw

from dendrite_lite.storage import device_lists, e2e_keys
from dendrite_lite.types import DeviceId, StreamPos, UserId


@dataclass(frozen=True)
class DeviceRow:
    user_id: UserId
    device_id: DeviceId
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None


def get(conn: apsw.Connection, user_id: str, device_id: str) -> DeviceRow | None:
    for row in conn.execute(
        "SELECT display_name, last_seen_ts, last_seen_ip FROM devices"
        " WHERE user_id = ? AND device_id = ?",
        (user_id, device_id),
    ):
        return DeviceRow(UserId(user_id), DeviceId(device_id), row[0], row[1], row[2])
    return None


def list_for_user(conn: apsw.Connection, user_id: str) -> list[DeviceRow]:
    return [
        DeviceRow(UserId(user_id), DeviceId(row[0]), row[1], row[2], row[3])
        for row in conn.execute(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices"
            " WHERE user_id = ? ORDER BY device_id",
            (user_id,),
        )
    ]


def upsert(
    conn: apsw.Connection,
    user_id: UserId,
    device_id: DeviceId,
    display_name: str | None,
    created_ts: int,
) -> None:
    """Create the device, or keep it (a login may reuse its device ID) with a new name."""
    conn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, created_ts)"
        " VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET"
        " display_name = coalesce(excluded.display_name, devices.display_name)",
        (user_id, device_id, display_name, created_ts),
    )


def set_display_name(
    conn: apsw.Connection, user_id: str, device_id: str, display_name: str | None
) -> bool:
    conn.execute(
        "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?",
        (display_name, user_id, device_id),
    )
    return conn.changes() > 0


def delete(conn: apsw.Connection, user_id: str, device_ids: Sequence[str]) -> StreamPos | None:
    """Delete devices; their tokens and end-to-end keys go with them (foreign keys).

    When one of them had published device keys, the user's device list changed: the
    change is logged (storage/device_lists.py) and its stream position returned.
    """
    had_keys = e2e_keys.any_device_keys(conn, user_id, device_ids)
    pairs = [(user_id, device_id) for device_id in device_ids]
    conn.executemany("DELETE FROM devices WHERE user_id = ? AND device_id = ?", pairs)
    # Messages waiting for a device that is gone would never be fetched.
    conn.executemany("DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ?", pairs)
    return device_lists.record(conn, [(user_id, None)]) if had_keys else None


def delete_all(
    conn: apsw.Connection, user_id: str, except_device: str | None = None
) -> StreamPos | None:
    """Delete every device but `except_device`; see `delete`."""
    remaining = [] if except_device is None else [except_device]
    doomed = [
        row.device_id for row in list_for_user(conn, user_id) if row.device_id not in remaining
    ]
    return delete(conn, user_id, doomed) if doomed else None


def record_last_seen(
    conn: apsw.Connection, seen: list[tuple[int, str, str | None, str, str]]
) -> None:
    """Flush last-seen stats: rows of (ts, ip, user_agent, user_id, device_id)."""
    conn.executemany(
        "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ?, last_seen_user_agent = ?"
        " WHERE user_id = ? AND device_id = ?",
        seen,
    )
