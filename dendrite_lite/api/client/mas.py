"""/_synapse/mas/*: what matrix-authentication-service calls on its homeserver to
provision users and devices (Synapse 1.136+'s API; MAS's `synapse_modern` kind).
Served only in external mode with [auth.external] secret set; oauth/mas.py does the work.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency, Provide

from dendrite_lite.accounts.profile import Profiles
from dendrite_lite.api.body import parse_body
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.notifier import Notifier
from dendrite_lite.oauth.mas import MasHomeserver
from dendrite_lite.oauth.server import AuthorizationServer
from dendrite_lite.rooms.pipeline import EventCreator

PREFIX = "/_synapse/mas"
AnyRequest = Request[Any, Any, Any]


class LocalpartBody(msgspec.Struct):
    localpart: str


class ProvisionUserBody(msgspec.Struct):
    localpart: str
    set_displayname: str | None = None
    unset_displayname: bool = False
    set_avatar_url: str | None = None
    unset_avatar_url: bool = False
    set_emails: list[str] | None = None
    unset_emails: bool = False


class DeleteUserBody(msgspec.Struct):
    localpart: str
    erase: bool


class SetDisplaynameBody(msgspec.Struct):
    localpart: str
    displayname: str


class UpsertDeviceBody(msgspec.Struct):
    localpart: str
    device_id: str
    display_name: str | None = None


class DeviceBody(msgspec.Struct):
    localpart: str
    device_id: str


class DeviceNameBody(msgspec.Struct):
    localpart: str
    device_id: str
    display_name: str


class SyncDevicesBody(msgspec.Struct):
    localpart: str
    devices: list[str]


def provide_mas(
    request: AnyRequest,
    oauth_server: AuthorizationServer,
    profiles: Profiles,
    event_creator: EventCreator,
    notifier: Notifier,
) -> MasHomeserver:
    """Every handler's first step: 404 unless in external mode, 403 unless MAS calls."""
    config = oauth_server.config.auth
    if config.mode != "external" or not config.external.secret:
        raise MatrixError(404, ErrCode.UNRECOGNIZED, "Unrecognized request")
    mas = MasHomeserver(
        oauth_server.db,
        oauth_server.config.server_name,
        config.external.secret,
        profiles,
        event_creator,
        notifier,
    )
    mas.check_caller(request.headers.get("authorization"))
    return mas


MAS = {"mas": Provide(provide_mas, sync_to_thread=False)}


def _query(request: AnyRequest, key: str) -> str:
    value = request.query_params.get(key)
    if not value:
        raise MatrixError(400, ErrCode.MISSING_PARAM, f"Missing {key}")
    return str(value)


def _status(status: int) -> Response[Any]:
    return Response(content={} if status != 204 else b"", status_code=status)


@get(f"{PREFIX}/query_user", dependencies=MAS)
async def query_user(
    request: AnyRequest,
    mas: NamedDependency[MasHomeserver],
) -> dict[str, Any]:
    """GET /_synapse/mas/query_user?localpart="""
    found = await mas.query_user(_query(request, "localpart"))
    return dataclasses.asdict(found)


@get(f"{PREFIX}/is_localpart_available", dependencies=MAS)
async def is_localpart_available(
    request: AnyRequest,
    mas: NamedDependency[MasHomeserver],
) -> dict[str, Any]:
    """GET /_synapse/mas/is_localpart_available?localpart="""
    await mas.is_localpart_available(_query(request, "localpart"))
    return {}


@post(f"{PREFIX}/provision_user", status_code=200, dependencies=MAS)
async def provision_user(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> Response[Any]:
    """POST /_synapse/mas/provision_user"""
    body = parse_body(data, ProvisionUserBody)
    for field in ("displayname", "avatar_url", "emails"):
        if getattr(body, f"unset_{field}") and getattr(body, f"set_{field}") is not None:
            raise MatrixError(400, ErrCode.INVALID_PARAM, f"set_{field} and unset_{field}")
    created = await mas.provision_user(
        body.localpart,
        displayname=body.set_displayname,
        unset_displayname=body.unset_displayname,
        avatar_url=body.set_avatar_url,
        unset_avatar_url=body.unset_avatar_url,
        emails=[] if body.unset_emails else body.set_emails,
    )
    return _status(201 if created else 200)


@post(f"{PREFIX}/delete_user", status_code=200, dependencies=MAS)
async def delete_user(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_synapse/mas/delete_user"""
    body = parse_body(data, DeleteUserBody)
    await mas.delete_user(body.localpart, body.erase)
    return {}


@post(f"{PREFIX}/reactivate_user", status_code=200, dependencies=MAS)
async def reactivate_user(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_synapse/mas/reactivate_user"""
    await mas.reactivate_user(parse_body(data, LocalpartBody).localpart)
    return {}


@post(f"{PREFIX}/set_displayname", status_code=200, dependencies=MAS)
async def set_displayname(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_synapse/mas/set_displayname"""
    body = parse_body(data, SetDisplaynameBody)
    await mas.set_displayname(body.localpart, body.displayname)
    return {}


@post(f"{PREFIX}/unset_displayname", status_code=200, dependencies=MAS)
async def unset_displayname(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_synapse/mas/unset_displayname"""
    await mas.set_displayname(parse_body(data, LocalpartBody).localpart, None)
    return {}


@post(f"{PREFIX}/allow_cross_signing_reset", status_code=200, dependencies=MAS)
async def allow_cross_signing_reset(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_synapse/mas/allow_cross_signing_reset"""
    await mas.allow_cross_signing_reset(parse_body(data, LocalpartBody).localpart)
    return {}


@post(f"{PREFIX}/upsert_device", status_code=200, dependencies=MAS)
async def upsert_device(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> Response[Any]:
    """POST /_synapse/mas/upsert_device"""
    body = parse_body(data, UpsertDeviceBody)
    created = await mas.upsert_device(body.localpart, body.device_id, body.display_name)
    return _status(201 if created else 200)


@post(f"{PREFIX}/update_device_display_name", status_code=200, dependencies=MAS)
async def update_device_display_name(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_synapse/mas/update_device_display_name"""
    body = parse_body(data, DeviceNameBody)
    await mas.update_device_display_name(body.localpart, body.device_id, body.display_name)
    return {}


@post(f"{PREFIX}/delete_device", status_code=200, dependencies=MAS)
async def delete_device(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> Response[Any]:
    """POST /_synapse/mas/delete_device"""
    body = parse_body(data, DeviceBody)
    await mas.delete_devices(body.localpart, [body.device_id])
    return _status(204)


@post(f"{PREFIX}/sync_devices", status_code=200, dependencies=MAS)
async def sync_devices(
    mas: NamedDependency[MasHomeserver],
    data: Any = None,
) -> dict[str, Any]:
    """POST /_synapse/mas/sync_devices"""
    body = parse_body(data, SyncDevicesBody)
    await mas.delete_devices(body.localpart, None, keep=body.devices)
    return {}


ROUTES = [
    query_user,
    is_localpart_available,
    provision_user,
    delete_user,
    reactivate_user,
    set_displayname,
    unset_displayname,
    allow_cross_signing_reset,
    upsert_device,
    update_device_display_name,
    delete_device,
    sync_devices,
]
