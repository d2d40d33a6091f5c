"""Profiles: https://spec.matrix.org/latest/client-server-api/#profiles"""

from __future__ import annotations

from typing import Any

from litestar import delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.accounts.profile import Profiles
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester


@get("/_matrix/client/v3/profile/{user_id:str}")
async def get_profile(
    profiles: NamedDependency[Profiles], user_id: FromPath[str]
) -> dict[str, Any]:
    """GET /_matrix/client/v3/profile/{userId}"""
    return await profiles.get_profile(path_value(user_id))


@get("/_matrix/client/v3/profile/{user_id:str}/{key_name:str}")
async def get_profile_field(
    profiles: NamedDependency[Profiles], user_id: FromPath[str], key_name: FromPath[str]
) -> dict[str, Any]:
    """GET /_matrix/client/v3/profile/{userId}/{keyName}"""
    key = path_value(key_name)
    return {key: await profiles.get_field(path_value(user_id), key)}


@put("/_matrix/client/v3/profile/{user_id:str}/{key_name:str}")
async def set_profile_field(
    profiles: NamedDependency[Profiles],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    key_name: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/profile/{userId}/{keyName}"""
    await profiles.set_field(requester, path_value(user_id), path_value(key_name), data)
    return {}


@delete("/_matrix/client/v3/profile/{user_id:str}/{key_name:str}", status_code=200)
async def delete_profile_field(
    profiles: NamedDependency[Profiles],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    key_name: FromPath[str],
) -> dict[str, Any]:
    """DELETE /_matrix/client/v3/profile/{userId}/{keyName}"""
    await profiles.delete_field(requester, path_value(user_id), path_value(key_name))
    return {}
