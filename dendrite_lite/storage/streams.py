"""The one global stream position shared by every persisted stream."""

from __future__ import annotations

from typing import Literal

import apsw

from dendrite_lite.storage import snapshot
from dendrite_lite.types import StreamPos


def next_position(conn: apsw.Connection) -> StreamPos:
    """Take the next position; only ever called on the writer thread."""
    for (position,) in conn.execute(
        "UPDATE stream_position SET position = position + 1 WHERE id = 0 RETURNING position"
    ):
        return StreamPos(position)
    raise RuntimeError("stream_position row is missing")


def current_position(conn: apsw.Connection) -> StreamPos:
    return snapshot.once(conn, "current_position", lambda: _read_position(conn))


def _read_position(conn: apsw.Connection) -> StreamPos:
    for (position,) in conn.execute("SELECT position FROM stream_position WHERE id = 0"):
        return StreamPos(position)
    raise RuntimeError("stream_position row is missing")


def rooms_between(
    conn: apsw.Connection, stream: Literal["events", "receipts"], after: int, upto: int
) -> frozenset[str]:
    """The rooms with rows of `stream` after position `after`, up to `upto`: where an
    incremental sync looks. Shared by the units of a background batch (storage/snapshot.py)."""

    def read() -> frozenset[str]:
        return frozenset(
            str(room_id)
            for (room_id,) in conn.execute(
                f"SELECT DISTINCT room_id FROM {stream} WHERE stream_pos > ? AND stream_pos <= ?",
                (after, upto),
            )
        )

    return snapshot.once(conn, ("rooms_between", stream, after, upto), read)
