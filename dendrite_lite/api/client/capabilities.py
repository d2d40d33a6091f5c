"""Capabilities: https://spec.matrix.org/latest/client-server-api/#capabilities-negotiation"""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.config import Config
from dendrite_lite.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS


@get("/_matrix/client/v3/capabilities")
async def get_capabilities(
    requester: NamedDependency[Requester], config: NamedDependency[Config]
) -> dict[str, Any]:
    """GET /_matrix/client/v3/capabilities"""
    return {
        "capabilities": {
            "m.change_password": {"enabled": not requester.is_guest},
            "m.room_versions": {
                "default": DEFAULT_ROOM_VERSION.identifier,
                "available": {version: "stable" for version in KNOWN_ROOM_VERSIONS},
            },
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.3pid_changes": {"enabled": config.email.enabled},
            "m.get_login_token": {"enabled": False},
            "m.profile_fields": {"enabled": True},
        }
    }
