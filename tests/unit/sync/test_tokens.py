"""Sync tokens: `s<pos>` and `s<pos>_<typing>_<to-device>`."""

from __future__ import annotations

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.sync.tokens import SyncToken, parse


def test_round_trips() -> None:
    assert str(SyncToken(5)) == "s5"
    assert parse("s5") == SyncToken(5)
    token = SyncToken(9, 3, 7)
    assert str(token) == "s9_3_7" and parse("s9_3_7") == token
    assert SyncToken(9, 2).to_device_position == 9
    assert str(SyncToken(9, 2)) == "s9_2_9"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "s",
        "5",
        "s-1",
        "s1_2",
        "s1__2",
        "s1_2_3_4",
        "t1",
        "s1.0",
        "s\u00b2",
        "s\uff11",
        "s" + "9" * 19,
    ],
)
def test_rejects(bad: str) -> None:
    with pytest.raises(MatrixError) as caught:
        parse(bad)
    assert caught.value.status == 400
