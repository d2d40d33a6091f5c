"""User directory: https://spec.matrix.org/latest/client-server-api/#user-directory"""

from __future__ import annotations

from typing import Any

from litestar import post
from litestar.di import NamedDependency

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.user_directory import UserDirectory


@post("/_matrix/client/v3/user_directory/search", status_code=200)
async def search_user_directory(
    user_directory: NamedDependency[UserDirectory],
    requester: NamedDependency[Requester],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/user_directory/search"""
    return await user_directory.search(requester, data)
