"""Sliding sync's hot room data serves state events exactly as client_format does."""

from __future__ import annotations

import msgspec
import pytest

from dendrite_lite.rooms import client_format
from dendrite_lite.sliding_sync import room_cache
from dendrite_lite.sliding_sync.room_cache import RoomSnapshot
from dendrite_lite.storage.events import EventRow


def _row(unsigned: bytes) -> EventRow:
    client = msgspec.json.encode(
        {
            "event_id": "$topic",
            "room_id": "!r:x",
            "type": "m.room.topic",
            "state_key": "",
            "sender": "@a:x",
            "origin_server_ts": 1_000,
            "content": {"topic": "hello"},
        }
    )
    return EventRow(
        7, "$topic", "!r:x", "m.room.topic", "", "@a:x", 1_000, 3, 9, 1, 2, client, None, None,
        None, unsigned,
    )  # fmt: skip


@pytest.mark.parametrize(
    "unsigned",
    [b"{}", msgspec.json.encode({"prev_content": {"topic": "old"}, "replaces_state": "$old"})],
)
def test_served_state_matches_client_format(unsigned: bytes) -> None:
    snapshot = RoomSnapshot(9, {}, {}, 1, 0, None, None, None, (), (), ())
    row = _row(unsigned)
    served = msgspec.json.decode(snapshot.serve(row, 5_000))
    assert served == msgspec.json.decode(client_format.serve(row, now=5_000))
    assert served["unsigned"]["age"] == 4_000


def _from_sqlite(row: EventRow) -> EventRow:
    """The row with strings of its own, as each row read from SQLite has."""
    return msgspec.structs.replace(
        row,
        room_id="".join(list(row.room_id)),
        type="".join(list(row.type)),
        sender="".join(list(row.sender)),
        state_key=None if row.state_key is None else "".join(list(row.state_key) or [""]),
        unsigned=bytes(bytearray(row.unsigned)),
    )


def test_kept_rows_are_equal_and_share_their_repeated_strings() -> None:
    first, second = _from_sqlite(_row(b"{}")), _from_sqlite(_row(b"{}"))
    assert first.room_id is not second.room_id
    kept_first, kept_second = room_cache.kept(first), room_cache.kept(second)
    assert kept_first == first and kept_second == second
    for field in ("room_id", "type", "sender", "unsigned"):
        assert getattr(kept_first, field) is getattr(kept_second, field), field
    # A row with unsigned data of its own keeps it.
    own = msgspec.json.encode({"prev_content": {"topic": "old"}})
    assert room_cache.kept(_row(own)).unsigned == own
