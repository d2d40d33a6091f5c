"""The content of m.room.member events, with the member's profile as the spec asks.

https://spec.matrix.org/latest/client-server-api/#mroommember
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from dendrite_lite.storage import profiles


def _profile(conn: apsw.Connection, user_id: str) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for field in ("displayname", "avatar_url"):
        raw = profiles.get_field(conn, user_id, field)
        if raw is not None:
            value = msgspec.json.decode(raw)
            if isinstance(value, str):
                content[field] = value
    return content


def join(conn: apsw.Connection, user_id: str, reason: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"membership": "join", **_profile(conn, user_id)}
    if reason:
        content["reason"] = reason
    return content


def invite(
    conn: apsw.Connection, user_id: str, is_direct: bool = False, reason: str | None = None
) -> dict[str, Any]:
    content: dict[str, Any] = {"membership": "invite", **_profile(conn, user_id)}
    if is_direct:
        content["is_direct"] = True
    if reason:
        content["reason"] = reason
    return content


def simple(membership: str, reason: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"membership": membership}
    if reason:
        content["reason"] = reason
    return content
