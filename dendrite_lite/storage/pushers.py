"""Pushers (HTTP push gateways a user's devices receive notifications through)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec


@dataclass(frozen=True)
class PusherRow:
    id: int
    user_id: str
    device_id: str
    kind: str
    app_id: str
    pushkey: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    pushkey_ts: int
    last_stream_pos: int
    failing_since: int | None


_COLUMNS = (
    "id, user_id, device_id, kind, app_id, pushkey, app_display_name, device_display_name,"
    " profile_tag, lang, data, pushkey_ts, last_stream_pos, failing_since"
)


def _row(row: tuple[Any, ...]) -> PusherRow:
    return PusherRow(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        str(row[5]),
        str(row[6]),
        str(row[7]),
        None if row[8] is None else str(row[8]),
        str(row[9]),
        msgspec.json.decode(row[10]),
        int(row[11]),
        int(row[12]),
        None if row[13] is None else int(row[13]),
    )


@dataclass(frozen=True)
class NewPusher:
    user_id: str
    device_id: str
    kind: str
    app_id: str
    pushkey: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]


def for_user(conn: apsw.Connection, user_id: str) -> list[PusherRow]:
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY id", (user_id,)
        )
    ]


def for_users(conn: apsw.Connection, user_ids: Iterable[str]) -> list[PusherRow]:
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id IN (SELECT value FROM json_each(?))"
            " ORDER BY id",
            (msgspec.json.encode(sorted(set(user_ids))),),
        )
    ]


def all_pushers(conn: apsw.Connection) -> list[PusherRow]:
    return [_row(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM pushers ORDER BY id")]


def users_with_pushers(conn: apsw.Connection) -> set[str]:
    return {str(user_id) for (user_id,) in conn.execute("SELECT DISTINCT user_id FROM pushers")}


def has_pushers(conn: apsw.Connection, user_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pushers WHERE user_id = ? LIMIT 1", (user_id,)).fetchone()
        is not None
    )


def upsert(conn: apsw.Connection, pusher: NewPusher, now_ms: int, position: int) -> None:
    """Create the pusher, or update the user's pusher with the same app_id and pushkey
    (its delivery position is kept)."""
    conn.execute(
        "INSERT INTO pushers (user_id, device_id, kind, app_id, pushkey, app_display_name,"
        " device_display_name, profile_tag, lang, data, pushkey_ts, last_stream_pos)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET device_id = excluded.device_id,"
        " kind = excluded.kind, app_display_name = excluded.app_display_name,"
        " device_display_name = excluded.device_display_name,"
        " profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data,"
        " pushkey_ts = excluded.pushkey_ts",
        (
            pusher.user_id,
            pusher.device_id,
            pusher.kind,
            pusher.app_id,
            pusher.pushkey,
            pusher.app_display_name,
            pusher.device_display_name,
            pusher.profile_tag,
            pusher.lang,
            msgspec.json.encode(pusher.data),
            now_ms,
            position,
        ),
    )


def delete(conn: apsw.Connection, user_id: str, app_id: str, pushkey: str) -> bool:
    conn.execute(
        "DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
        (user_id, app_id, pushkey),
    )
    return conn.changes() > 0


def delete_for_other_users(
    conn: apsw.Connection, user_id: str, app_id: str, pushkey: str
) -> list[str]:
    """Remove the pushers with this app_id and pushkey of everyone else; whose they were."""
    return [
        str(owner)
        for (owner,) in conn.execute(
            "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?"
            " RETURNING user_id",
            (app_id, pushkey, user_id),
        )
    ]


def delete_by_id(conn: apsw.Connection, pusher_id: int) -> None:
    conn.execute("DELETE FROM pushers WHERE id = ?", (pusher_id,))


def advance(conn: apsw.Connection, pusher_id: int, stream_pos: int) -> None:
    """Delivered (or given up on) up to `stream_pos`; the gateway works again."""
    conn.execute(
        "UPDATE pushers SET last_stream_pos = max(last_stream_pos, ?), failing_since = NULL"
        " WHERE id = ?",
        (stream_pos, pusher_id),
    )


def set_failing_since(conn: apsw.Connection, pusher_id: int, failing_since: int | None) -> None:
    conn.execute("UPDATE pushers SET failing_since = ? WHERE id = ?", (failing_since, pusher_id))


def get(conn: apsw.Connection, pusher_id: int) -> PusherRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM pushers WHERE id = ?", (pusher_id,)).fetchone()
    return None if row is None else _row(row)
