"""Checks on what clients send to the 3PID endpoints: addresses, secrets, links.

Pure functions (no I/O). Every failure is the spec's M_INVALID_PARAM, naming the field.
https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3registeremailrequesttoken
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from dendrite_lite.errors import ErrCode, MatrixError

EMAIL = "email"
MSISDN = "msisdn"
# The spec lists this code for the 3PID requestToken endpoints; not in ErrCode's set.
MEDIUM_NOT_SUPPORTED = "M_THREEPID_MEDIUM_NOT_SUPPORTED"

# client_secret and sid: "[0-9a-zA-Z.=_-]", 1 to 255 characters.
_OPAQUE = re.compile(r"^[0-9a-zA-Z.=_-]{1,255}$")
# RFC 5321 limits; the local part is kept simple on purpose (no quoted strings, no
# comments): what mail providers hand out, and nothing that could break a header.
_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_ADDRESS_LENGTH = 254


def invalid(message: str) -> MatrixError:
    return MatrixError(400, ErrCode.INVALID_PARAM, message)


def canonical_email(value: str) -> str:
    """The address as stored and compared: trimmed and lower-cased, or M_INVALID_PARAM.

    Lower-casing the local part too is what Synapse does; mail providers treat it
    case-insensitively in practice, and one address must never belong to two accounts.
    """
    address = value.strip().lower()
    if len(address) > MAX_ADDRESS_LENGTH or address.count("@") != 1:
        raise invalid("Invalid email address")
    local, domain = address.split("@")
    if not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise invalid("Invalid email address")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise invalid("Invalid email address")
    return address


def check_opaque(value: str, name: str) -> str:
    """client_secret and sid: the spec's character set and length."""
    if not _OPAQUE.match(value):
        raise invalid(f"{name} must be 1-255 characters of [0-9a-zA-Z.=_-]")
    return value


def check_send_attempt(value: int) -> int:
    if not 0 <= value < 2**53:
        raise invalid("send_attempt must be a non-negative integer")
    return value


def check_next_link(value: str | None, allowed_hosts: list[str]) -> str | None:
    """next_link: an absolute http(s) URL (no javascript:, data: or other schemes, which
    would turn our validation page into a script launcher), optionally on a listed host."""
    if value is None or value == "":
        return None
    if len(value) > 2048 or any(ch in value for ch in "\r\n\t <>\"'\\"):
        raise invalid("next_link is not a valid URL")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise invalid("next_link is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise invalid("next_link must be an http or https URL")
    if allowed_hosts and host.lower() not in {h.lower() for h in allowed_hosts}:
        raise invalid(f"next_link may not point to {host}")
    return value


def hash_token(token: str) -> bytes:
    """Tokens are random (256 bits): an unsalted SHA-256 is enough to keep a database
    copy from being a set of working links."""
    return hashlib.sha256(token.encode()).digest()
