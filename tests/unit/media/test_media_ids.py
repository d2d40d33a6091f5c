"""Media IDs are pasted into the command line, so none may look like an option."""

from __future__ import annotations

import pytest

from dendrite_lite.media import repository
from dendrite_lite.media.repository import new_media_id


def test_a_random_id_that_begins_with_a_dash_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = iter(["-K_xGaQO_EwMI2ZR8o9j3XLQ", "-second", "K_xGaQO_EwMI2ZR8o9j3XLQ"])
    monkeypatch.setattr(repository.secrets, "token_urlsafe", lambda _n: next(draws))
    assert new_media_id() == "K_xGaQO_EwMI2ZR8o9j3XLQ"


def test_ids_are_24_url_safe_characters() -> None:
    ids = {new_media_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 24 and not i.startswith("-") for i in ids)
    assert all(c.isalnum() or c in "-_" for i in ids for c in i)
