"""Glob matching (push/glob.py) against the spec's examples and a brute-force reference."""

from __future__ import annotations

import random
import re
import time

import pytest

from dendrite_lite.push.glob import Glob

WORD = re.compile(r"[A-Za-z0-9_]")


def reference_whole(pattern: str, value: str) -> bool:
    """Straight from the definition: * any run, ? one character, case-insensitive."""
    source = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(source, value, re.IGNORECASE | re.DOTALL) is not None


def reference_words(pattern: str, body: str) -> bool:
    """Any substring [i, j) with word boundaries at i and j that the glob matches."""
    n = len(body)
    starts = [i for i in range(n + 1) if i == 0 or not WORD.match(body[i - 1])]
    ends = [j for j in range(n + 1) if j == n or not WORD.match(body[j])]
    return any(reference_whole(pattern, body[i:j]) for i in starts for j in ends if j >= i)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # The spec's event_match example: `lunc?*` on content.topic.
        ("lunc?*", "Lunch plans", True),
        ("lunc?*", "LUNCH", True),
        ("lunc?*", " lunch", False),
        ("lunc?*", "lunc", False),
        ("m.notice", "m.notice", True),
        ("m.notice", "m.noticeX", False),
        ("m.notice", "m_notice", False),  # '.' is literal
        ("*", "", True),
        ("", "", True),
        ("", "x", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("a**c", "ac", True),
        ("?", "é", True),
        ("[abc]", "[abc]", True),  # no character classes: brackets are literal
        ("[abc]", "a", False),
    ],
)
def test_whole_value(pattern: str, value: str, expected: bool) -> None:
    assert Glob(pattern).matches(value) is expected


@pytest.mark.parametrize(
    ("pattern", "body", "expected"),
    [
        # The spec's content.body example: `ex*ple`.
        ("ex*ple", "An example event.", True),
        ("ex*ple", "exple", True),
        ("ex*ple", "An exciting triple-whammy", True),
        ("cake", "I like cake", True),
        ("cake", "I like cakes", False),
        ("cake", "pancake", False),
        ("cake", "CAKE!", True),
        ("cake*lie", "the cake is a lie", True),
        ("cake*lie", "the cake is a lier", False),
        ("@room", "hey @room, look", True),
        ("@room", "x@room", False),
        ("alice", "alice_b", False),  # '_' is a word character
        ("alice", "alice-b", True),
        ("ﬀ", "ﬀ", True),
        ("*", "", True),
    ],
)
def test_body_words(pattern: str, body: str, expected: bool) -> None:
    assert Glob(pattern).matches_words(body) is expected


def test_only_ascii_letters_are_word_characters() -> None:
    # Case-insensitivity must not make U+212A (Kelvin) or U+017F (long s) word characters.
    assert Glob("x").matches_words("\u212ax\u017f")
    assert Glob("é").matches_words("caf é")
    assert Glob("caf").matches_words("café")  # 'é' is not a word character here


def test_literal_glob() -> None:
    assert Glob("Dr. Who?", literal=True).matches_words("hi Dr. Who? there")
    assert not Glob("Dr. Who?", literal=True).matches_words("hi Dr. Whom there")


def test_agrees_with_brute_force() -> None:
    rng = random.Random(1234)
    alphabet = "ab_ -*?"
    for _ in range(4000):
        pattern = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        value = "".join(rng.choice("abAB_ -.") for _ in range(rng.randint(0, 9)))
        glob = Glob(pattern)
        assert glob.matches(value) is reference_whole(pattern, value), (pattern, value)
        assert glob.matches_words(value) is reference_words(pattern, value), (pattern, value)


def test_linear_time_on_hostile_input() -> None:
    """A regex translation of `a*a*...*b` backtracks polynomially on 'aaaa…'; this
    matcher stays linear, so a user's rule cannot stall the writer thread."""
    pattern = "a*" * 20 + "b"
    body = "a " * 32_000
    started = time.perf_counter()
    assert not Glob(pattern).matches_words(body)
    assert not Glob(pattern).matches(body)
    assert time.perf_counter() - started < 0.5
