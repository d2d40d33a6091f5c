"""The pure checks on what clients send: addresses, opaque IDs, next_link, tokens."""

from __future__ import annotations

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.threepid.addresses import (
    canonical_email,
    check_next_link,
    check_opaque,
    check_send_attempt,
    hash_token,
)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("alice@example.org", "alice@example.org"),
        ("  Alice.Smith+matrix@Mail.Example.ORG ", "alice.smith+matrix@mail.example.org"),
        ("o'brien@example.co.uk", "o'brien@example.co.uk"),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
    ],
)
def test_canonical_email(given: str, canonical: str) -> None:
    assert canonical_email(given) == canonical


@pytest.mark.parametrize(
    "given",
    [
        "",
        "plain",
        "a@b",
        "a@@b.org",
        "a b@c.org",
        "a@b..org",
        "a@-b.org",
        "a@b-.org",
        '"quoted"@example.org',
        "a@example.org\nBcc: x@example.org",
        "a" * 65 + "@example.org",
        "a@" + ("b" * 60 + ".") * 5 + "org",
        "a.@example.org",
        "a@exam_ple.org",
    ],
)
def test_invalid_emails(given: str) -> None:
    with pytest.raises(MatrixError) as raised:
        canonical_email(given)
    assert raised.value.errcode == "M_INVALID_PARAM"


def test_opaque_ids_follow_the_spec_alphabet() -> None:
    assert check_opaque("aZ09.=_-", "sid") == "aZ09.=_-"
    for bad in ("", "a b", "a/b", "é", "x" * 256):
        with pytest.raises(MatrixError):
            check_opaque(bad, "client_secret")


def test_send_attempt_range() -> None:
    assert check_send_attempt(0) == 0
    for bad in (-1, 2**53):
        with pytest.raises(MatrixError):
            check_send_attempt(bad)


def test_next_link() -> None:
    assert check_next_link(None, []) is None
    assert check_next_link("", []) is None
    assert check_next_link("https://a.example/x?y=1", []) == "https://a.example/x?y=1"
    assert check_next_link("http://A.example/", ["a.example"]) == "http://A.example/"
    for bad in (
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "vbscript:x",
        "data:text/html,x",
        "file:///etc/passwd",
        "https://",
        "https://[::1",
        "/local",
        "https://a.example/\r\nSet-Cookie: x",
        "https://a.example/" + "x" * 2048,
    ):
        with pytest.raises(MatrixError):
            check_next_link(bad, [])
    with pytest.raises(MatrixError):
        check_next_link("https://b.example/", ["a.example"])


def test_token_hash_is_stable_and_distinct() -> None:
    assert hash_token("a") == hash_token("a")
    assert hash_token("a") != hash_token("b")
    assert len(hash_token("a")) == 32
