from __future__ import annotations

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.identifiers import check_new_localpart, local_user_id, split_user_id


def test_local_user_id_resolution() -> None:
    assert local_user_id("Alice", "hs") == "@alice:hs"
    assert local_user_id("@alice:hs", "hs") == "@alice:hs"
    assert local_user_id("@alice:other", "hs") is None
    assert local_user_id("@nocolon", "hs") is None


@pytest.mark.parametrize("localpart", ["", "Alice", "al ice", "a:b", "é", "x" * 300])
def test_invalid_localparts(localpart: str) -> None:
    with pytest.raises(MatrixError) as info:
        check_new_localpart(localpart, "hs")
    assert info.value.errcode == "M_INVALID_USERNAME"


def test_valid_localpart() -> None:
    check_new_localpart("a.b_c=d-e/f+g9", "hs")


def test_split_user_id() -> None:
    assert split_user_id("@a:b:8448") == ("a", "b:8448")
    with pytest.raises(ValueError):
        split_user_id("a:b")
