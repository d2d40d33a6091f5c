"""Dot-separated property paths: https://spec.matrix.org/latest/appendices/#dot-separated-property-paths

Used by push rule conditions (event_match keys) and by filters' event_fields.
"""

from __future__ import annotations


def split_path(path: str) -> tuple[str, ...]:
    """`content.m\\.relates_to` -> ("content", "m.relates_to").

    `\\.` is a literal dot and `\\\\` a literal backslash; any other backslash is kept
    as it is, as the appendix asks.
    """
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(path):
        char = path[index]
        if char == "\\" and index + 1 < len(path) and path[index + 1] in ".\\":
            current.append(path[index + 1])
            index += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return tuple(parts)
