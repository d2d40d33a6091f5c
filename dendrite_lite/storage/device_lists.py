"""Device-list changes on the global stream, and who shared a room with whom when.

`device_list_changes` (schema.sql) logs, at a stream position, that a user's device list
changed: device keys published or changed, a device with keys deleted, cross-signing
keys or signatures uploaded. Membership history comes from the membership events
(`events_membership_*` indexes): a user's membership in a room at position P is their
`user_rooms` row when it last changed at or before P, else the latest membership event
at or before P.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import apsw

from dendrite_lite.storage import streams
from dendrite_lite.types import StreamPos


def _membership_at(pos: str) -> str:
    """SQL: the membership of a user_rooms row `ur` at position `pos` (NULL: none)."""
    return (
        f"CASE WHEN ur.stream_pos <= {pos} THEN ur.membership ELSE ("
        "SELECT e.membership FROM events AS e WHERE e.room_id = ur.room_id"
        f" AND e.state_key = ur.user_id AND e.membership IS NOT NULL AND e.stream_pos <= {pos}"
        " ORDER BY e.stream_pos DESC LIMIT 1) END"
    )


def record(conn: apsw.Connection, changes: Iterable[tuple[str, str | None]]) -> StreamPos:
    """Log (user_id, audience) changes at the next stream position; returns it."""
    position = streams.next_position(conn)
    conn.executemany(
        "INSERT INTO device_list_changes (stream_pos, user_id, audience) VALUES (?, ?, ?)"
        " ON CONFLICT (stream_pos, user_id) DO UPDATE SET"
        " audience = CASE WHEN audience IS excluded.audience THEN audience END",
        [(position, user_id, audience) for user_id, audience in changes],
    )
    return position


def anything_changed(conn: apsw.Connection, since: int, upto: int) -> bool:
    """Whether any device list or any membership changed in (since, upto]: two index probes."""
    for (changed,) in conn.execute(
        "SELECT EXISTS (SELECT 1 FROM device_list_changes WHERE stream_pos > ?1"
        " AND stream_pos <= ?2) OR EXISTS (SELECT 1 FROM events WHERE membership IS NOT NULL"
        " AND stream_pos > ?1 AND stream_pos <= ?2)",
        (since, upto),
    ):
        return bool(changed)
    return False


def changed_users(
    conn: apsw.Connection, viewer: str, since: int, upto: int
) -> list[tuple[str, bool]]:
    """Users whose device list changed in (since, upto] as `viewer` may see it.

    (user_id, private): private when the change was for the viewer alone.
    """
    return [
        (str(user_id), bool(private))
        for user_id, private in conn.execute(
            "SELECT user_id, max(audience IS NOT NULL) FROM device_list_changes"
            " WHERE stream_pos > ? AND stream_pos <= ? AND (audience IS NULL OR audience = ?)"
            " GROUP BY user_id",
            (since, upto, viewer),
        )
    ]


def membership_changes(
    conn: apsw.Connection, user_id: str, since: int, upto: int
) -> list[tuple[str, str]]:
    """(room_id, member) of membership events in (since, upto] in rooms `user_id` has been in."""
    return [
        (str(room_id), str(member))
        for room_id, member in conn.execute(
            "SELECT DISTINCT e.room_id, e.state_key FROM events AS e"
            " JOIN user_rooms AS ur ON ur.user_id = ? AND ur.room_id = e.room_id"
            " WHERE e.membership IS NOT NULL AND e.stream_pos > ? AND e.stream_pos <= ?",
            (user_id, since, upto),
        )
    ]


def joined_rooms_at(conn: apsw.Connection, user_id: str, pos: int) -> list[str]:
    """The rooms `user_id` was joined to at stream position `pos`."""
    return [
        str(room_id)
        for (room_id,) in conn.execute(
            "SELECT ur.room_id FROM user_rooms AS ur WHERE ur.user_id = :user"
            f" AND {_membership_at(':pos')} = 'join'",
            {"user": user_id, "pos": pos},
        )
    ]


def joined_in_any_at(
    conn: apsw.Connection, users: Iterable[str], room_ids: Iterable[str], pos: int
) -> set[str]:
    """Those of `users` joined to at least one of `room_ids` at stream position `pos`."""
    rooms = list(room_ids)
    candidates = list(users)
    if not rooms or not candidates:
        return set()
    return {
        str(user_id)
        for (user_id,) in conn.execute(
            "SELECT DISTINCT ur.user_id FROM json_each(:users) AS c"
            " JOIN user_rooms AS ur ON ur.user_id = c.value"
            " WHERE ur.room_id IN (SELECT value FROM json_each(:rooms))"
            f" AND {_membership_at(':pos')} = 'join'",
            {"users": json.dumps(candidates), "rooms": json.dumps(rooms), "pos": pos},
        )
    }


def members_at_either(conn: apsw.Connection, room_id: str, first: int, second: int) -> list[str]:
    """The users joined to the room at stream position `first` or at `second`."""
    return [
        str(user_id)
        for (user_id,) in conn.execute(
            "SELECT ur.user_id FROM user_rooms AS ur WHERE ur.room_id = :room"
            f" AND ({_membership_at(':first')} = 'join' OR {_membership_at(':second')} = 'join')",
            {"room": room_id, "first": first, "second": second},
        )
    ]


def sharing_a_room(conn: apsw.Connection, user_id: str) -> list[str]:
    """Everyone joined to a room `user_id` is joined to (themselves included if joined)."""
    return [
        str(other)
        for (other,) in conn.execute(
            "SELECT DISTINCT b.user_id FROM user_rooms AS a"
            " JOIN user_rooms AS b ON b.room_id = a.room_id AND b.membership = 'join'"
            " WHERE a.user_id = ? AND a.membership = 'join'",
            (user_id,),
        )
    ]
