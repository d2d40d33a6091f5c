"""Unread notification counts: cleared by the user's own read receipts.

https://spec.matrix.org/latest/client-server-api/#marking-notifications-as-read: "When
the user updates their read receipt ... notifications prior to and including that event
MUST be marked as read", with m.read and m.read.private alike: the one further ahead
counts. A receipt with a thread_id ('main' or a thread root) marks only that thread; an
unthreaded one marks every thread.

Counts are raised in the send path (push/hook.py) and recounted here, in the receipt's
own write unit, so a /sync sees the receipt and the new counts together.
"""

from __future__ import annotations

import apsw

from dendrite_lite.storage import notifications as store


def mark_read(
    conn: apsw.Connection, user_id: str, room_id: str, thread_id: str, stream_pos: int
) -> bool:
    """The user read up to `stream_pos` (an event's position) in a thread ('' for all);
    True when the counts were recounted."""
    if not store.advance_read_mark(conn, user_id, room_id, thread_id, stream_pos):
        return False  # an older receipt: what was read stays read
    if not store.read_through(conn, user_id, room_id, thread_id, stream_pos):
        store.recount(conn, user_id, room_id)  # read part of the way
    return True
