"""Filter definitions: the IDs they list follow the spec's patterns, except in filters
that an older version stored without checking them."""

from __future__ import annotations

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.filters import decode_filter, parse_room_event_filter


@pytest.mark.parametrize(
    "definition",
    [
        b'{"room": {"rooms": ["!ok:x", "nope"]}}',
        b'{"room": {"account_data": {"not_rooms": [""]}}}',
        b'{"account_data": {"not_senders": ["#alias:x"]}}',
        b'{"room": {"timeline": {"senders": ["@ok:x", "bob"]}}}',
    ],
)
def test_ids_that_cannot_be_ids_are_refused(definition: bytes) -> None:
    with pytest.raises(MatrixError) as caught:
        decode_filter(definition)
    assert caught.value.status == 400 and caught.value.errcode == "M_BAD_JSON"


def test_a_stored_filter_is_not_checked_again() -> None:
    stored = b'{"room": {"not_rooms": [""], "timeline": {"limit": 3}}}'
    assert decode_filter(stored, check_ids=False).room.timeline.limit == 3


def test_well_formed_ids_pass() -> None:
    parsed = decode_filter(b'{"room": {"rooms": ["!a:x"], "state": {"senders": ["@b:x"]}}}')
    assert parsed.room.rooms == ["!a:x"] and parsed.room.state.senders == ["@b:x"]
    assert parse_room_event_filter('{"not_rooms": ["!a:x"], "senders": ["@b:x"]}').senders == [
        "@b:x"
    ]
    with pytest.raises(MatrixError):
        parse_room_event_filter('{"rooms": ["a:x"]}')
