"""RoomList.merged: moving changed rows by bisection gives exactly the list a full sort
would, including new rooms, membership changes and ties on bump_stamp."""

from __future__ import annotations

import random

from dendrite_lite.sliding_sync.service import RoomList, _recency
from dendrite_lite.storage.sliding_sync import ListedRoom


def row(i: int, bump: int, membership: str = "join", by_other: bool = False) -> ListedRoom:
    return ListedRoom(f"!r{i}:x", membership, i, bump, bump, by_other)


def test_merged_equals_a_full_sort() -> None:
    rng = random.Random(7)
    rows = sorted((row(i, rng.randrange(50)) for i in range(200)), key=_recency)
    current = RoomList(rows)
    for _ in range(300):
        changed = [
            row(
                rng.randrange(230),
                rng.randrange(80),
                rng.choice(["join", "join", "invite", "leave"]),
                rng.random() < 0.3,
            )
            for _ in range(rng.randrange(1, 4))
        ]
        changed = list({r.room_id: r for r in changed}.values())
        merged = current.merged(changed)
        expected = {r.room_id: r for r in current.rows}
        expected.update({r.room_id: r for r in changed})
        want = sorted(expected.values(), key=_recency)
        assert merged.rows == want
        assert merged.by_id == {r.room_id: r for r in want}
        assert merged.all_live == RoomList(want).all_live
        current = merged


def test_merged_leaves_the_original_untouched() -> None:
    rows = [row(1, 5), row(2, 3)]
    original = RoomList(rows)
    merged = original.merged([row(2, 9)])
    assert [r.room_id for r in merged.rows] == ["!r2:x", "!r1:x"]
    assert [r.room_id for r in original.rows] == ["!r1:x", "!r2:x"]
    assert original.by_id["!r2:x"].bump_stamp == 3
