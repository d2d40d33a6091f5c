"""Sync tokens: `s<position>` or `s<position>_<typing serial>_<to-device position>`.

The stream position covers every persisted stream. Typing is in memory and has its own
serial; to-device messages are delivered in batches, so the token remembers how far
they went, which may lag the position. Pagination tokens (/messages) are the plain
`s<position>` form, and a sync token is accepted there too.
"""

from __future__ import annotations

from dataclasses import dataclass

from dendrite_lite.errors import ErrCode, MatrixError


@dataclass(frozen=True)
class SyncToken:
    position: int
    typing: int = 0
    to_device: int | None = None  # None: same as position

    @property
    def to_device_position(self) -> int:
        return self.position if self.to_device is None else self.to_device

    def __str__(self) -> str:
        if self.typing == 0 and self.to_device is None:
            return f"s{self.position}"
        return f"s{self.position}_{self.typing}_{self.to_device_position}"


def parse(token: str) -> SyncToken:
    parts = token[1:].split("_") if token.startswith("s") and len(token) <= 64 else []
    # ASCII digits only: str.isdigit() also takes superscripts and other scripts' digits
    # (and int() fails on superscripts).
    if len(parts) not in (1, 3) or not all(_number(p) for p in parts):
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"Invalid sync token {token!r}")
    if len(parts) == 1:
        return SyncToken(int(parts[0]))
    return SyncToken(int(parts[0]), int(parts[1]), int(parts[2]))


def _number(part: str) -> bool:
    return 0 < len(part) <= 18 and part.isascii() and part.isdigit()
