"""Filters: https://spec.matrix.org/latest/client-server-api/#filtering"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, not_found
from dendrite_lite.filters import decode_filter, without_nulls
from dendrite_lite.storage import filters
from dendrite_lite.storage.db import Database


@post("/_matrix/client/v3/user/{user_id:str}/filter", status_code=200)
async def define_filter(
    db: NamedDependency[Database],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    data: Any,
) -> dict[str, str]:
    """POST /_matrix/client/v3/user/{userId}/filter"""
    if path_value(user_id) != requester.user_id:
        raise forbidden("Cannot create filters for other users")
    if not isinstance(data, dict):
        raise MatrixError(400, ErrCode.BAD_JSON, "A filter is a JSON object")
    # No field of a filter is nullable; a null means "not given" here, as everywhere a
    # filter is read, and is left out of what is stored, so that the filter read back
    # is a valid definition with the same meaning.
    data = without_nulls(data)
    decode_filter(msgspec.json.encode(data))  # validate the shape
    stored = msgspec.json.encode(data, order="sorted")

    def store(conn: apsw.Connection) -> int:
        return filters.insert(conn, requester.user_id, stored)

    return {"filter_id": str(await db.write(store))}


@get("/_matrix/client/v3/user/{user_id:str}/filter/{filter_id:str}")
async def get_filter(
    db: NamedDependency[Database],
    requester: NamedDependency[Requester],
    user_id: FromPath[str],
    filter_id: FromPath[str],
) -> msgspec.Raw:
    """GET /_matrix/client/v3/user/{userId}/filter/{filterId}"""
    if path_value(user_id) != requester.user_id:
        raise forbidden("Cannot read filters of other users")
    if not (filter_id.isascii() and filter_id.isdigit()) or len(filter_id) > 18:
        raise not_found("No such filter")
    number = int(filter_id)
    stored = await db.read(lambda conn: filters.get(conn, requester.user_id, number))
    if stored is None:
        raise not_found("No such filter")
    return msgspec.Raw(stored)
