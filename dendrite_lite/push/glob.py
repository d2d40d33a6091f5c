"""Glob-style matching for push rules, in linear time.

https://spec.matrix.org/latest/appendices/#glob-style-matching: `*` matches zero or more
characters, `?` exactly one. Matching is case-insensitive.

`event_match` on most keys must match the whole value; on `content.body` it must match
any substring that starts and ends at a word boundary (the start or end of the value,
or a character outside `[A-Za-z0-9_]`).

A glob is turned into one regular expression per `*`-separated segment. Every segment
has a fixed length (literals and `?`), so each search is linear, and the segments are
matched greedily left to right: the leftmost occurrence of a segment is always the best
choice, because the `*` after it absorbs anything. A translated `a*b*c` regex could
backtrack polynomially on a long body; this never does, so no user's rule can stall the
writer thread that evaluates rules.
"""

from __future__ import annotations

import re

# Word characters are exactly the ASCII ones; `(?-i:...)` keeps IGNORECASE from letting
# [A-Za-z] also match U+017F (long s) or U+212A (Kelvin sign).
_WORD = "(?-i:[A-Za-z0-9_])"
_STARTS_AT_BOUNDARY = f"(?<!{_WORD})"
_ENDS_AT_BOUNDARY = f"(?!{_WORD})"
_FLAGS = re.IGNORECASE | re.DOTALL


def _segment_source(segment: str) -> str:
    return "".join("." if char == "?" else re.escape(char) for char in segment)


class Glob:
    """A compiled glob: `matches(value)` for whole values, `matches_words(body)` for
    `content.body`."""

    __slots__ = (
        "_first",
        "_first_at_start",
        "_last",
        "_last_at_end",
        "_lengths",
        "_middle",
        "_single",
        "pattern",
    )

    def __init__(self, pattern: str, *, literal: bool = False) -> None:
        """`literal`: `pattern` is plain text, its `*` and `?` matching only themselves
        (for display names)."""
        self.pattern = pattern
        segments = [pattern] if literal else pattern.split("*")
        sources = [re.escape(pattern)] if literal else [_segment_source(s) for s in segments]
        self._lengths = [len(s) for s in segments]
        if len(sources) == 1:
            # No star: one fixed-length regex does everything.
            self._single: tuple[re.Pattern[str], re.Pattern[str]] | None = (
                re.compile(sources[0], _FLAGS),
                re.compile(_STARTS_AT_BOUNDARY + sources[0] + _ENDS_AT_BOUNDARY, _FLAGS),
            )
            empty = re.compile("", _FLAGS)
            self._first = self._first_at_start = self._last = self._last_at_end = empty
            self._middle: list[re.Pattern[str]] = []
            return
        self._single = None
        # For words: the first segment must start at a boundary, the last end at one.
        self._first = re.compile(_STARTS_AT_BOUNDARY + sources[0], _FLAGS)
        self._first_at_start = re.compile(sources[0], _FLAGS)
        self._last = re.compile(sources[-1] + _ENDS_AT_BOUNDARY, _FLAGS)
        self._last_at_end = re.compile(sources[-1], _FLAGS)
        self._middle = [re.compile(source, _FLAGS) for source in sources[1:-1]]

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def matches(self, value: str) -> bool:
        """Whether the glob matches the whole of `value`."""
        if self._single is not None:
            return self._single[0].fullmatch(value) is not None
        lengths = self._lengths
        start, end = lengths[0], len(value) - lengths[-1]
        if end < start:
            return False
        # The first segment at the start, the last at the end (fixed lengths).
        if self._first_at_start.match(value, 0, start) is None:
            return False
        if self._last_at_end.fullmatch(value, end) is None:
            return False
        position = start
        for segment in self._middle:
            found = segment.search(value, position, end)
            if found is None:
                return False
            position = found.end()
        return True

    def matches_words(self, body: str) -> bool:
        """Whether the glob matches a substring of `body` starting and ending at word
        boundaries (the `content.body` rule)."""
        if self._single is not None:
            return self._single[1].search(body) is not None
        # The earliest start is the best one: any later start leaves less room.
        if self._lengths[0]:
            first = self._first.search(body)
            if first is None:
                return False
            position = first.end()
        else:
            position = 0  # the start of the value is a boundary
        for segment in self._middle:
            found = segment.search(body, position)
            if found is None:
                return False
            position = found.end()
        if not self._lengths[-1]:
            return True  # the end of the value is a boundary
        return self._last.search(body, position) is not None
