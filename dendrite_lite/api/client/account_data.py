"""Client config: https://spec.matrix.org/latest/client-server-api/#client-config"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.accounts.account_data import AccountData
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.storage.account_data import GLOBAL


@get("/_matrix/client/v3/user/{user_id:str}/account_data/{type_:str}")
async def get_global_account_data(
    account_data: NamedDependency[AccountData],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    type_: FromPath[str],
) -> msgspec.Raw:
    """GET /_matrix/client/v3/user/{userId}/account_data/{type}"""
    return await account_data.get(  # type: ignore[no-any-return]
        requester, path_value(user_id), GLOBAL, path_value(type_)
    )


@put("/_matrix/client/v3/user/{user_id:str}/account_data/{type_:str}")
async def set_global_account_data(
    account_data: NamedDependency[AccountData],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    type_: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/user/{userId}/account_data/{type}"""
    await account_data.put(requester, path_value(user_id), GLOBAL, path_value(type_), data)
    return {}


@get("/_matrix/client/v3/user/{user_id:str}/rooms/{room_id:str}/account_data/{type_:str}")
async def get_room_account_data(
    account_data: NamedDependency[AccountData],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    room_id: FromPath[str],
    type_: FromPath[str],
) -> msgspec.Raw:
    """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
    return await account_data.get(  # type: ignore[no-any-return]
        requester, path_value(user_id), path_value(room_id), path_value(type_)
    )


@put("/_matrix/client/v3/user/{user_id:str}/rooms/{room_id:str}/account_data/{type_:str}")
async def set_room_account_data(
    account_data: NamedDependency[AccountData],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    room_id: FromPath[str],
    type_: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
    await account_data.put(
        requester, path_value(user_id), path_value(room_id), path_value(type_), data
    )
    return {}
