"""End-to-end encryption keys: https://spec.matrix.org/latest/client-server-api/#key-management-api
and cross-signing: https://spec.matrix.org/latest/client-server-api/#cross-signing
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, Parameter

from dendrite_lite.api.body import parse_body
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.e2ee.cross_signing import CrossSigning
from dendrite_lite.e2ee.device_keys import DeviceKeys
from dendrite_lite.errors import ErrCode, MatrixError


class UploadKeysBody(msgspec.Struct, kw_only=True):
    device_keys: dict[str, Any] | None = None
    one_time_keys: dict[str, Any] | None = None
    fallback_keys: dict[str, Any] | None = None
    # The unstable name (MSC2732) some clients still send.
    unstable_fallback_keys: dict[str, Any] | None = msgspec.field(
        default=None, name="org.matrix.msc2732.fallback_keys"
    )


class QueryKeysBody(msgspec.Struct, kw_only=True):
    device_keys: dict[str, list[str]]
    timeout: int | None = None


class ClaimKeysBody(msgspec.Struct, kw_only=True):
    one_time_keys: dict[str, dict[str, str]]
    timeout: int | None = None


class DeviceSigningBody(msgspec.Struct, kw_only=True):
    master_key: dict[str, Any] | None = None
    self_signing_key: dict[str, Any] | None = None
    user_signing_key: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None


@post("/_matrix/client/v3/keys/upload", status_code=200)
async def upload_keys(
    e2e_keys: NamedDependency[DeviceKeys], requester: NamedDependency[Requester], data: Any
) -> dict[str, Any]:
    """POST /_matrix/client/v3/keys/upload"""
    body = parse_body(data, UploadKeysBody)
    fallback_keys = body.fallback_keys
    if fallback_keys is None:
        fallback_keys = body.unstable_fallback_keys
    counts = await e2e_keys.upload(requester, body.device_keys, body.one_time_keys, fallback_keys)
    return {"one_time_key_counts": counts}


@post("/_matrix/client/v3/keys/query", status_code=200)
async def query_keys(
    e2e_keys: NamedDependency[DeviceKeys], requester: NamedDependency[Requester], data: Any
) -> dict[str, Any]:
    """POST /_matrix/client/v3/keys/query"""
    body = parse_body(data, QueryKeysBody)
    return await e2e_keys.query(requester, body.device_keys)


@post("/_matrix/client/v3/keys/claim", status_code=200)
async def claim_keys(
    e2e_keys: NamedDependency[DeviceKeys], requester: NamedDependency[Requester], data: Any
) -> dict[str, Any]:
    """POST /_matrix/client/v3/keys/claim"""
    body = parse_body(data, ClaimKeysBody)
    return await e2e_keys.claim(requester, body.one_time_keys)


@get("/_matrix/client/v3/keys/changes")
async def get_key_changes(
    e2e_keys: NamedDependency[DeviceKeys],
    requester: NamedDependency[Requester],
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: FromQuery[str | None] = None,
) -> dict[str, list[str]]:
    """GET /_matrix/client/v3/keys/changes"""
    if from_ is None:
        raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing parameter from")
    return await e2e_keys.changes(requester, from_, to)


@post("/_matrix/client/v3/keys/device_signing/upload", status_code=200)
async def upload_cross_signing_keys(
    request: Request[Any, Any, Any],
    cross_signing: NamedDependency[CrossSigning],
    requester: NamedDependency[Requester],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/keys/device_signing/upload"""
    body = parse_body(data, DeviceSigningBody)
    keys = {
        "master": body.master_key,
        "self_signing": body.self_signing_key,
        "user_signing": body.user_signing_key,
    }
    await cross_signing.upload_keys(requester, keys, body.auth, request.url.path)
    return {}


@post("/_matrix/client/v3/keys/signatures/upload", status_code=200)
async def upload_cross_signing_signatures(
    cross_signing: NamedDependency[CrossSigning],
    requester: NamedDependency[Requester],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/keys/signatures/upload"""
    signed = parse_body(data, dict[str, dict[str, dict[str, Any]]])
    return await cross_signing.upload_signatures(requester, signed)


ROUTES: list[Any] = [
    upload_keys,
    query_keys,
    claim_keys,
    get_key_changes,
    upload_cross_signing_keys,
    upload_cross_signing_signatures,
]
