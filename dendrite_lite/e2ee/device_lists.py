"""The device-list stream, and the end-to-end encryption parts of /sync.

https://spec.matrix.org/latest/client-server-api/#e2e-extensions-to-sync

A user's device list changes when a device publishes or changes its keys, when a device
that had keys is deleted, and when the user's cross-signing keys (or signatures of their
keys) change. Each change takes a position on the global stream
(`storage/device_lists.py`) and wakes the long-polls of everyone sharing a room with the
user. The functions sync calls take a read connection (its snapshot) and are cheap when
nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable

import apsw

from dendrite_lite.storage import device_lists as store
from dendrite_lite.storage import e2e_keys
from dendrite_lite.types import StreamPos

# Clients (libolm's and vodozemac's) take a missing count for "unknown", not zero, so the
# count of the one algorithm in use is always given.
SIGNED_CURVE25519 = "signed_curve25519"


def record_changes(
    conn: apsw.Connection, changes: Iterable[tuple[str, str | None]]
) -> tuple[StreamPos, list[str]]:
    """Log device-list changes at the next stream position, in the caller's write unit.

    changes: (user_id whose list changed, audience): audience None for everyone sharing a
    room with the user, or the one user the change is for. Returns the position and the
    local users to wake (``notifier.notify(users, position)`` once committed).
    """
    changes = list(changes)
    position = store.record(conn, changes)
    return position, users_to_wake(conn, changes)


def users_to_wake(conn: apsw.Connection, changes: Iterable[tuple[str, str | None]]) -> list[str]:
    """The local users whose sync may report the changes."""
    wake: set[str] = set()
    for user_id, audience in changes:
        if audience is not None:
            wake.add(audience)
            continue
        wake.add(user_id)
        server = ":" + user_id.partition(":")[2]
        wake.update(u for u in store.sharing_a_room(conn, user_id) if u.endswith(server))
    return sorted(wake)


def device_list_changes(
    conn: apsw.Connection, user_id: str, since: int, upto: int
) -> tuple[list[str], list[str]]:
    """`device_lists` of an incremental sync: (changed, left) between two positions.

    Sync calls it for an incremental sync only (spec: not on an initial one), in its read
    snapshot, with ``since`` = the token's position and ``upto`` = the position the
    response is computed at (its ``next_batch`` position)::

        changed, left = device_list_changes(conn, user_id, token.position, now)
        response["device_lists"] = {"changed": changed, "left": left}

    A non-empty list makes the sync non-empty. `changed`: users who share a joined room
    with `user_id` at `upto` (or are `user_id`) and whose device list changed in
    (since, upto], and users who share a room at `upto` but did not at `since`. `left`:
    users who shared a room at `since` and no longer do. One indexed query when nothing
    changed.
    """
    if since >= upto or not store.anything_changed(conn, since, upto):
        return [], []
    rooms_now = store.joined_rooms_at(conn, user_id, upto)
    changed: set[str] = set()
    public: list[str] = []
    for other, private in store.changed_users(conn, user_id, since, upto):
        if other == user_id or private:
            changed.add(other)
        else:
            public.append(other)
    changed |= store.joined_in_any_at(conn, public, rooms_now, upto)

    left: set[str] = set()
    membership = store.membership_changes(conn, user_id, since, upto)
    if membership:
        candidates = {member for _, member in membership}
        for room_id in {room for room, member in membership if member == user_id}:
            candidates.update(store.members_at_either(conn, room_id, since, upto))
        candidates.discard(user_id)
        if candidates:
            rooms_then = store.joined_rooms_at(conn, user_id, since)
            sharing_then = store.joined_in_any_at(conn, candidates, rooms_then, since)
            sharing_now = store.joined_in_any_at(conn, candidates, rooms_now, upto)
            changed |= sharing_now - sharing_then
            left = sharing_then - sharing_now
    return sorted(changed - left), sorted(left)


def one_time_key_counts(conn: apsw.Connection, user_id: str, device_id: str) -> dict[str, int]:
    """`device_one_time_keys_count` of every sync (initial or not) for the device.

    ``response["device_one_time_keys_count"] = one_time_key_counts(conn, user, device)``;
    one indexed query. `signed_curve25519` is always present (0 when none are left).
    Not a reason on its own for a sync to be non-empty.
    """
    counts = e2e_keys.count_one_time_keys(conn, user_id, device_id)
    counts.setdefault(SIGNED_CURVE25519, 0)
    return counts


def unused_fallback_key_types(conn: apsw.Connection, user_id: str, device_id: str) -> list[str]:
    """`device_unused_fallback_key_types` of every sync (initial or not) for the device.

    ``response["device_unused_fallback_key_types"] = unused_fallback_key_types(conn, ...)``
    (the spec requires the field; [] when the device has no unused fallback key). One
    indexed query. Not a reason on its own for a sync to be non-empty.
    """
    return e2e_keys.unused_fallback_algorithms(conn, user_id, device_id)
