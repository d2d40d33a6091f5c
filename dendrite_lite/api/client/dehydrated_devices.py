"""Dehydrated devices, MSC3814: https://github.com/matrix-org/matrix-spec-proposals/pull/3814

Served under the MSC's unstable prefix, as Synapse serves it and as matrix-js-sdk and
matrix-rust-sdk (Element) call it. ``device_data`` and the keys are kept as uploaded, so
bodies are decoded here with ``msgspec.Raw`` fields (strict JSON types, like api/body.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter

from dendrite_lite.api.client.key_backup import decode_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.e2ee.dehydrated_devices import (
    DEFAULT_EVENTS_LIMIT,
    DehydratedDevices,
    DehydratedDeviceUpload,
)
from dendrite_lite.errors import ErrCode, MatrixError

MSC3814 = "/_matrix/client/unstable/org.matrix.msc3814.v1"
_EMPTY = msgspec.Raw(b"{}")


class PutDehydratedDeviceBody(msgspec.Struct, kw_only=True):
    device_id: str
    device_data: msgspec.Raw
    device_keys: msgspec.Raw
    initial_device_display_name: str | None = None
    one_time_keys: msgspec.Raw = _EMPTY
    fallback_keys: msgspec.Raw = _EMPTY


class EventsBody(msgspec.Struct):
    next_batch: str | None = None


class DehydratedDevice(msgspec.Struct):
    device_id: str
    device_data: msgspec.Raw


class ToDeviceEvent(msgspec.Struct):
    sender: str
    type: str
    content: msgspec.Raw


class EventsResponse(msgspec.Struct):
    events: list[ToDeviceEvent]
    next_batch: str


def _key_map(raw: msgspec.Raw) -> bytes:
    """An optional key map as uploaded; null counts as absent."""
    value = bytes(raw)
    return b"{}" if value == b"null" else value


@put(f"{MSC3814}/dehydrated_device")
async def put_dehydrated_device(
    request: Request[Any, Any, Any],
    dehydrated_devices: NamedDependency[DehydratedDevices],
    requester: NamedDependency[Requester],
) -> dict[str, str]:
    """PUT /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
    body = decode_body(await request.body(), PutDehydratedDeviceBody)
    upload = DehydratedDeviceUpload(
        device_id=body.device_id,
        device_data=bytes(body.device_data),
        initial_device_display_name=body.initial_device_display_name,
        device_keys=bytes(body.device_keys),
        one_time_keys=_key_map(body.one_time_keys),
        fallback_keys=_key_map(body.fallback_keys),
    )
    return {"device_id": await dehydrated_devices.put(requester, upload)}


@get(f"{MSC3814}/dehydrated_device")
async def get_dehydrated_device(
    dehydrated_devices: NamedDependency[DehydratedDevices],
    requester: NamedDependency[Requester],
) -> DehydratedDevice:
    """GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
    row = await dehydrated_devices.get(requester)
    return DehydratedDevice(row.device_id, msgspec.Raw(row.device_data))


@delete(f"{MSC3814}/dehydrated_device", status_code=200)
async def delete_dehydrated_device(
    dehydrated_devices: NamedDependency[DehydratedDevices],
    requester: NamedDependency[Requester],
) -> dict[str, str]:
    """DELETE /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
    return {"device_id": await dehydrated_devices.delete(requester)}


@post(f"{MSC3814}/dehydrated_device/{{device_id:str}}/events", status_code=200)
async def get_dehydrated_device_events(
    request: Request[Any, Any, Any],
    dehydrated_devices: NamedDependency[DehydratedDevices],
    requester: NamedDependency[Requester],
    device_id: FromPath[str],
    limit: int = DEFAULT_EVENTS_LIMIT,
) -> EventsResponse:
    """POST /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events"""
    raw = await request.body()
    body = decode_body(raw, EventsBody) if raw.strip() else EventsBody()
    if limit < 1:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "limit must be positive")
    messages, next_batch = await dehydrated_devices.events(
        requester, path_value(device_id), body.next_batch, limit
    )
    return EventsResponse(
        [ToDeviceEvent(m.sender, m.type, msgspec.Raw(m.content)) for m in messages], next_batch
    )


class PagedEventsResponse(msgspec.Struct, omit_defaults=True):
    events: list[ToDeviceEvent]
    next_batch: str | None = None


@get(f"{MSC3814}/dehydrated_device/{{device_id:str}}/events")
async def get_dehydrated_device_events_paged(
    dehydrated_devices: NamedDependency[DehydratedDevices],
    requester: NamedDependency[Requester],
    device_id: FromPath[str],
    from_: Annotated[str | None, Parameter(query="from")] = None,
    limit: int = DEFAULT_EVENTS_LIMIT,
) -> PagedEventsResponse:
    """GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events

    The current shape of MSC3814 (matrix-js-sdk 43 uses it; Synapse serves both): the
    token comes as `from`, and the last page has no `next_batch`, which ends the paging.
    """
    if limit < 1:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "limit must be positive")
    messages, next_batch = await dehydrated_devices.events(
        requester, path_value(device_id), from_, limit
    )
    events = [ToDeviceEvent(m.sender, m.type, msgspec.Raw(m.content)) for m in messages]
    return PagedEventsResponse(events, next_batch if len(messages) >= limit else None)


ROUTES: list[Any] = [
    put_dehydrated_device,
    get_dehydrated_device,
    delete_dehydrated_device,
    get_dehydrated_device_events,
    get_dehydrated_device_events_paged,
]
