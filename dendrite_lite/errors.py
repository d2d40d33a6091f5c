"""Matrix errors: https://spec.matrix.org/latest/client-server-api/#standard-error-response

Services raise `MatrixError`; the HTTP layer turns it into ``{"errcode", "error", ...}``
with its status. Hierarchy::

    Exception
     └── MatrixError            errcode + HTTP status + message (+ extra JSON fields)
          └── UIARequired       401 carrying the user-interactive auth state
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrCode(StrEnum):
    """Every errcode the server answers with, named as the spec names them."""

    FORBIDDEN = "M_FORBIDDEN"
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
    MISSING_TOKEN = "M_MISSING_TOKEN"
    USER_LOCKED = "M_USER_LOCKED"
    USER_SUSPENDED = "M_USER_SUSPENDED"
    BAD_JSON = "M_BAD_JSON"
    NOT_JSON = "M_NOT_JSON"
    NOT_FOUND = "M_NOT_FOUND"
    LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
    UNRECOGNIZED = "M_UNRECOGNIZED"
    UNKNOWN = "M_UNKNOWN"
    UNAUTHORIZED = "M_UNAUTHORIZED"
    USER_DEACTIVATED = "M_USER_DEACTIVATED"
    USER_IN_USE = "M_USER_IN_USE"
    INVALID_USERNAME = "M_INVALID_USERNAME"
    ROOM_IN_USE = "M_ROOM_IN_USE"
    INVALID_ROOM_STATE = "M_INVALID_ROOM_STATE"
    THREEPID_IN_USE = "M_THREEPID_IN_USE"
    THREEPID_NOT_FOUND = "M_THREEPID_NOT_FOUND"
    THREEPID_AUTH_FAILED = "M_THREEPID_AUTH_FAILED"
    THREEPID_DENIED = "M_THREEPID_DENIED"
    SERVER_NOT_TRUSTED = "M_SERVER_NOT_TRUSTED"
    UNSUPPORTED_ROOM_VERSION = "M_UNSUPPORTED_ROOM_VERSION"
    INCOMPATIBLE_ROOM_VERSION = "M_INCOMPATIBLE_ROOM_VERSION"
    BAD_STATE = "M_BAD_STATE"
    GUEST_ACCESS_FORBIDDEN = "M_GUEST_ACCESS_FORBIDDEN"
    CAPTCHA_NEEDED = "M_CAPTCHA_NEEDED"
    CAPTCHA_INVALID = "M_CAPTCHA_INVALID"
    MISSING_PARAM = "M_MISSING_PARAM"
    INVALID_PARAM = "M_INVALID_PARAM"
    TOO_LARGE = "M_TOO_LARGE"
    EXCLUSIVE = "M_EXCLUSIVE"
    RESOURCE_LIMIT_EXCEEDED = "M_RESOURCE_LIMIT_EXCEEDED"
    CANNOT_LEAVE_SERVER_NOTICE_ROOM = "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
    WEAK_PASSWORD = "M_WEAK_PASSWORD"
    NOT_YET_UPLOADED = "M_NOT_YET_UPLOADED"
    CANNOT_OVERWRITE_MEDIA = "M_CANNOT_OVERWRITE_MEDIA"
    UNKNOWN_POS = "M_UNKNOWN_POS"
    PROFILE_TOO_LARGE = "M_PROFILE_TOO_LARGE"
    KEY_TOO_LARGE = "M_KEY_TOO_LARGE"
    WRONG_ROOM_KEYS_VERSION = "M_WRONG_ROOM_KEYS_VERSION"


class MatrixError(Exception):
    """An error a client sees as ``{"errcode": ..., "error": ...}`` with an HTTP status."""

    def __init__(self, status: int, errcode: ErrCode | str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = str(errcode)
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}

    def __repr__(self) -> str:
        return f"MatrixError({self.status}, {self.errcode!r}, {self.message!r})"


class UIARequired(MatrixError):
    """401 carrying the user-interactive auth flows; the body is the UIA state itself.

    https://spec.matrix.org/latest/client-server-api/#user-interactive-authentication-api
    """

    def __init__(self, body: dict[str, Any], errcode: str | None = None, message: str = "") -> None:
        super().__init__(401, errcode or ErrCode.UNAUTHORIZED, message or "Authentication required")
        self.body = body
        self.has_error = errcode is not None

    def to_json(self) -> dict[str, Any]:
        if self.has_error:
            return {"errcode": self.errcode, "error": self.message, **self.body}
        return dict(self.body)


def forbidden(message: str) -> MatrixError:
    return MatrixError(403, ErrCode.FORBIDDEN, message)


def not_found(message: str) -> MatrixError:
    return MatrixError(404, ErrCode.NOT_FOUND, message)


def bad_json(message: str) -> MatrixError:
    return MatrixError(400, ErrCode.BAD_JSON, message)


def invalid_param(message: str) -> MatrixError:
    return MatrixError(400, ErrCode.INVALID_PARAM, message)


def missing_param(message: str) -> MatrixError:
    return MatrixError(400, ErrCode.MISSING_PARAM, message)


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    return MatrixError(
        429, ErrCode.LIMIT_EXCEEDED, "Too many requests", retry_after_ms=retry_after_ms
    )
