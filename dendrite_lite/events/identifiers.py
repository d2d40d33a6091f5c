"""Grammar checks for the identifiers the event layer has to reason about.

Spec: https://spec.matrix.org/latest/appendices/#identifier-grammar (server names, user
IDs including the historical grammar, room and event IDs).

The auth rules compare *domains* (``m.federate``, aliases, v1 redactions, signatures) and
validate user IDs (keys of ``users`` in power levels, v12 ``additional_creators``).  User-ID
validation is deliberately the lenient *historical* grammar, which servers "MUST accept"
over federation; stricter checks belong to registration, not to event authorisation.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

__all__ = [
    "get_domain",
    "is_valid_server_name",
    "is_valid_user_id",
]

_DNS_NAME_RE: Final = re.compile(r"[A-Za-z0-9.-]{1,255}")
_IPV4_RE: Final = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_IPV6_CHARS_RE: Final = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")


def get_domain(identifier: str) -> str:
    """The part after the first ``:`` of ``@user:domain``, ``!room:domain``, ``$ev:domain``.

    Raises ``ValueError`` when there is no domain (e.g. v4+ event IDs or v12 room IDs).
    """
    _, sep, domain = identifier.partition(":")
    if not sep:
        raise ValueError(f"{identifier!r} has no domain part")
    return domain


def is_valid_server_name(name: str) -> bool:
    """``hostname [ ":" port ]`` with IPv4, bracketed IPv6 or DNS-name hostnames."""
    host = name
    if name.startswith("["):
        end = name.find("]")
        if end == -1:
            return False
        host, rest = name[1:end], name[end + 1 :]
        if rest and not (rest.startswith(":") and _PORT_RE.fullmatch(rest[1:])):
            return False
        if not _IPV6_CHARS_RE.fullmatch(host):
            return False
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    if ":" in name:
        host, port = name.rsplit(":", 1)
        if not _PORT_RE.fullmatch(port):
            return False
    if _IPV4_RE.fullmatch(host):
        return all(int(part) <= 255 for part in host.split("."))
    return bool(_DNS_NAME_RE.fullmatch(host))


def is_valid_user_id(user_id: str) -> bool:
    """Accept any user ID allowed by the *historical* grammar.

    ``@`` + localpart + ``:`` + server name, where the localpart may be any non-surrogate
    codepoints except ``:`` and NUL (possibly empty), and the whole ID is at most 255 bytes.
    """
    if not user_id.startswith("@"):
        return False
    try:
        if len(user_id.encode("utf-8")) > 255:
            return False
    except UnicodeEncodeError:  # lone surrogates
        return False
    localpart, sep, server_name = user_id[1:].partition(":")
    if not sep or "\x00" in localpart:
        return False
    return is_valid_server_name(server_name)
