"""Identifier grammar helpers."""

from __future__ import annotations

import pytest

from dendrite_lite.events.identifiers import get_domain, is_valid_server_name, is_valid_user_id


@pytest.mark.parametrize(
    "name",
    [
        "matrix.org",
        "matrix.org:8888",
        "1.2.3.4",
        "1.2.3.4:1234",
        "[1234:5678::abcd]",
        "[1234:5678::abcd]:5678",
        "localhost",
        "UPPER.example",
    ],
)
def test_valid_server_names(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "matrix.org:",
        "matrix.org:123456",
        "matrix.org:abc",
        "[1234:5678::abcd",
        "[1234:5678::abcd]x",
        "[not-ipv6]",
        "[zzzz::1]",
        "exa mple.org",
        "ex_ample.org",
        "a" * 256,
    ],
)
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


@pytest.mark.parametrize(
    "user_id",
    ["@alice:example.org", "@:example.org", "@Ünïcode chars!:example.org", "@a:[::1]:8448"],
)
def test_valid_user_ids_historical_grammar(user_id: str) -> None:
    assert is_valid_user_id(user_id)


@pytest.mark.parametrize(
    "user_id",
    [
        "alice:example.org",
        "@alice",
        "@al\x00ice:example.org",
        "@alice:bad_server",
        "@" + "a" * 250 + ":example.org",
        "@\ud800:example.org",
    ],
)
def test_invalid_user_ids(user_id: str) -> None:
    assert not is_valid_user_id(user_id)


def test_get_domain() -> None:
    assert get_domain("@a:b.org:8448") == "b.org:8448"
    assert get_domain("!r:x") == "x"
    with pytest.raises(ValueError):
        get_domain("$v4eventid")
