"""Device management: https://spec.matrix.org/latest/client-server-api/#device-management"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.accounts.devices import Devices
from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage.devices import DeviceRow


# Unknown fields are sent as null, as Synapse does: matrix-nio (and other clients)
# reject a device whose display_name/last_seen_* keys are absent.
class Device(msgspec.Struct):
    device_id: str
    display_name: str | None = None
    last_seen_ip: str | None = None
    last_seen_ts: int | None = None


class UpdateDeviceBody(msgspec.Struct):
    display_name: str | None = None


class DeleteDeviceBody(msgspec.Struct):
    auth: dict[str, Any] | None = None


class DeleteDevicesBody(msgspec.Struct):
    devices: list[str]
    auth: dict[str, Any] | None = None


def _device(row: DeviceRow) -> Device:
    return Device(row.device_id, row.display_name, row.last_seen_ip, row.last_seen_ts)


@get("/_matrix/client/v3/devices")
async def get_devices(
    devices: NamedDependency[Devices], requester: NamedDependency[Requester]
) -> dict[str, list[Device]]:
    """GET /_matrix/client/v3/devices"""
    return {"devices": [_device(row) for row in await devices.list_devices(requester)]}


@get("/_matrix/client/v3/devices/{device_id:str}")
async def get_device(
    devices: NamedDependency[Devices],
    requester: NamedDependency[Requester],
    device_id: FromPath[str],
) -> Device:
    """GET /_matrix/client/v3/devices/{deviceId}"""
    return _device(await devices.get(requester, path_value(device_id)))


@put("/_matrix/client/v3/devices/{device_id:str}")
async def update_device(
    devices: NamedDependency[Devices],
    requester: NamedDependency[Requester],
    device_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/devices/{deviceId}"""
    body = parse_body(data, UpdateDeviceBody)
    if body.display_name is not None and len(body.display_name) > 1000:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Display name is too long")
    await devices.rename(requester, path_value(device_id), body.display_name)
    return {}


@delete("/_matrix/client/v3/devices/{device_id:str}", status_code=200)
async def delete_device(
    request: Request[Any, Any, Any],
    devices: NamedDependency[Devices],
    requester: NamedDependency[Requester],
    device_id: FromPath[str],
    data: Any = None,
) -> dict[str, Any]:
    """DELETE /_matrix/client/v3/devices/{deviceId}"""
    body = parse_body(data, DeleteDeviceBody, default=DeleteDeviceBody())
    device_id = path_value(device_id)
    await devices.get(requester, device_id)  # 404 before asking for auth
    await devices.delete(requester, [device_id], body.auth, "DELETE", request.url.path)
    return {}


@post("/_matrix/client/v3/delete_devices", status_code=200)
async def delete_devices(
    request: Request[Any, Any, Any],
    devices: NamedDependency[Devices],
    requester: NamedDependency[Requester],
    data: Any,
) -> dict[str, Any]:
    """POST /_matrix/client/v3/delete_devices"""
    body = parse_body(data, DeleteDevicesBody)
    if len(body.devices) > 1000:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid device list")
    await devices.delete(requester, body.devices, body.auth, "POST", request.url.path)
    return {}
