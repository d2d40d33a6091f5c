"""The one global stream position shared by every persisted stream."""

from __future__ import annotations

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
