"""Server-side key backups: https://spec.matrix.org/latest/client-server-api/#server-side-key-backups

Bodies are read as bytes and decoded here with msgspec (strict JSON types, like
api/body.py) into Structs whose ``auth_data``/``session_data`` are ``msgspec.Raw``: the
server keeps and serves those objects exactly as uploaded, without re-encoding them.
Key uploads get their own body limit (KEY_UPLOAD_MAX_BODY_BYTES): a client uploading
its whole backup sends thousands of sessions in one request.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.e2ee.key_backup import KeyBackup, UploadedKey, VersionInfo
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage.key_backup import KeyRow

T = TypeVar("T")

KEY_UPLOAD_MAX_BODY_BYTES = 16 * 1024 * 1024

_V3 = "/_matrix/client/v3"
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


def decode_body(raw: bytes, kind: type[T]) -> T:
    """The request body as `kind`, JSON types taken strictly (see api/body.py).

    Not JSON at all (or no body) is 400 M_NOT_JSON; JSON of the wrong shape or types
    is 400 M_BAD_JSON naming the field.
    """
    try:
        return msgspec.json.decode(raw, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc).replace("`$.", "`").replace("`$[", "`[")
        raise MatrixError(400, ErrCode.BAD_JSON, message) from None
    except msgspec.DecodeError:
        raise MatrixError(400, ErrCode.NOT_JSON, "Content not JSON") from None


def _required(version: str | None) -> str:
    """The `version` query parameter, required by every /room_keys/keys endpoint.

    Declared optional so that a missing access token is reported before it (401 first).
    """
    if version is None:
        raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing required query parameter 'version'")
    return version


# -- bodies and responses ------------------------------------------------------------------


class CreateVersionBody(msgspec.Struct):
    algorithm: str
    auth_data: msgspec.Raw


class UpdateVersionBody(msgspec.Struct):
    algorithm: str
    auth_data: msgspec.Raw
    version: str | None = None


class KeyBackupData(msgspec.Struct):
    """A backed-up session key, in requests and responses."""

    first_message_index: NonNegative
    forwarded_count: NonNegative
    is_verified: bool
    session_data: msgspec.Raw


class RoomKeyBackup(msgspec.Struct):
    sessions: dict[str, KeyBackupData]


class RoomsKeyBackup(msgspec.Struct):
    rooms: dict[str, RoomKeyBackup]


class VersionResponse(msgspec.Struct):
    algorithm: str
    auth_data: msgspec.Raw
    count: int
    etag: str
    version: str


class UpdateResponse(msgspec.Struct):
    etag: str
    count: int


def _version_response(info: VersionInfo) -> VersionResponse:
    return VersionResponse(
        info.algorithm, msgspec.Raw(info.auth_data), info.count, info.etag, info.version
    )


def _uploaded(room_id: str, session_id: str, data: KeyBackupData) -> UploadedKey:
    return UploadedKey(
        room_id,
        session_id,
        data.first_message_index,
        data.forwarded_count,
        data.is_verified,
        bytes(data.session_data),
    )


def _served(row: KeyRow) -> KeyBackupData:
    return KeyBackupData(
        row.first_message_index,
        row.forwarded_count,
        row.is_verified,
        msgspec.Raw(row.session_data),
    )


def _by_room(rows: list[KeyRow]) -> dict[str, RoomKeyBackup]:
    rooms: dict[str, RoomKeyBackup] = {}
    for row in rows:
        room = rooms.get(row.room_id)
        if room is None:
            room = rooms[row.room_id] = RoomKeyBackup({})
        room.sessions[row.session_id] = _served(row)
    return rooms


# -- versions ------------------------------------------------------------------------------


@post(f"{_V3}/room_keys/version", status_code=200)
async def create_backup_version(
    request: Request[Any, Any, Any],
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
) -> dict[str, str]:
    """POST /_matrix/client/v3/room_keys/version"""
    body = decode_body(await request.body(), CreateVersionBody)
    version = await key_backup.create_version(requester, body.algorithm, bytes(body.auth_data))
    return {"version": version}


@get(f"{_V3}/room_keys/version")
async def get_current_backup_version(
    key_backup: NamedDependency[KeyBackup], requester: NamedDependency[Requester]
) -> VersionResponse:
    """GET /_matrix/client/v3/room_keys/version"""
    return _version_response(await key_backup.get_version(requester, None))


@get(f"{_V3}/room_keys/version/{{version:str}}")
async def get_backup_version(
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    version: FromPath[str],
) -> VersionResponse:
    """GET /_matrix/client/v3/room_keys/version/{version}"""
    return _version_response(await key_backup.get_version(requester, path_value(version)))


@put(f"{_V3}/room_keys/version/{{version:str}}")
async def update_backup_version(
    request: Request[Any, Any, Any],
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    version: FromPath[str],
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/room_keys/version/{version}"""
    body = decode_body(await request.body(), UpdateVersionBody)
    await key_backup.update_version(
        requester, path_value(version), body.algorithm, bytes(body.auth_data), body.version
    )
    return {}


@delete(f"{_V3}/room_keys/version/{{version:str}}", status_code=200)
async def delete_backup_version(
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    version: FromPath[str],
) -> dict[str, Any]:
    """DELETE /_matrix/client/v3/room_keys/version/{version}"""
    await key_backup.delete_version(requester, path_value(version))
    return {}


# -- keys: all rooms -----------------------------------------------------------------------


@put(f"{_V3}/room_keys/keys", request_max_body_size=KEY_UPLOAD_MAX_BODY_BYTES)
async def put_room_keys(
    request: Request[Any, Any, Any],
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    version: str | None = None,
) -> UpdateResponse:
    """PUT /_matrix/client/v3/room_keys/keys"""
    wanted = _required(version)
    body = decode_body(await request.body(), RoomsKeyBackup)
    keys = [
        _uploaded(room_id, session_id, data)
        for room_id, room in body.rooms.items()
        for session_id, data in room.sessions.items()
    ]
    etag, count = await key_backup.put_keys(requester, wanted, keys)
    return UpdateResponse(etag, count)


@get(f"{_V3}/room_keys/keys")
async def get_room_keys(
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    version: str | None = None,
) -> RoomsKeyBackup:
    """GET /_matrix/client/v3/room_keys/keys"""
    return RoomsKeyBackup(_by_room(await key_backup.get_keys(requester, _required(version))))


@delete(f"{_V3}/room_keys/keys", status_code=200)
async def delete_room_keys(
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    version: str | None = None,
) -> UpdateResponse:
    """DELETE /_matrix/client/v3/room_keys/keys"""
    return UpdateResponse(*await key_backup.delete_keys(requester, _required(version)))


# -- keys: one room ------------------------------------------------------------------------


@put(f"{_V3}/room_keys/keys/{{room_id:str}}", request_max_body_size=KEY_UPLOAD_MAX_BODY_BYTES)
async def put_room_keys_by_room(
    request: Request[Any, Any, Any],
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    version: str | None = None,
) -> UpdateResponse:
    """PUT /_matrix/client/v3/room_keys/keys/{roomId}"""
    wanted = _required(version)
    room = path_value(room_id)
    body = decode_body(await request.body(), RoomKeyBackup)
    keys = [_uploaded(room, session_id, data) for session_id, data in body.sessions.items()]
    etag, count = await key_backup.put_keys(requester, wanted, keys)
    return UpdateResponse(etag, count)


@get(f"{_V3}/room_keys/keys/{{room_id:str}}")
async def get_room_keys_by_room(
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    version: str | None = None,
) -> RoomKeyBackup:
    """GET /_matrix/client/v3/room_keys/keys/{roomId}"""
    room = path_value(room_id)
    rows = await key_backup.get_keys(requester, _required(version), room)
    return RoomKeyBackup({row.session_id: _served(row) for row in rows})


@delete(f"{_V3}/room_keys/keys/{{room_id:str}}", status_code=200)
async def delete_room_keys_by_room(
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    version: str | None = None,
) -> UpdateResponse:
    """DELETE /_matrix/client/v3/room_keys/keys/{roomId}"""
    return UpdateResponse(
        *await key_backup.delete_keys(requester, _required(version), path_value(room_id))
    )


# -- keys: one session ---------------------------------------------------------------------


@put(f"{_V3}/room_keys/keys/{{room_id:str}}/{{session_id:str}}")
async def put_room_key(
    request: Request[Any, Any, Any],
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    session_id: FromPath[str],
    version: str | None = None,
) -> UpdateResponse:
    """PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
    wanted = _required(version)
    data = decode_body(await request.body(), KeyBackupData)
    key = _uploaded(path_value(room_id), path_value(session_id), data)
    etag, count = await key_backup.put_keys(requester, wanted, [key])
    return UpdateResponse(etag, count)


@get(f"{_V3}/room_keys/keys/{{room_id:str}}/{{session_id:str}}")
async def get_room_key(
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    session_id: FromPath[str],
    version: str | None = None,
) -> KeyBackupData:
    """GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
    rows = await key_backup.get_keys(
        requester, _required(version), path_value(room_id), path_value(session_id)
    )
    if not rows:
        raise MatrixError(404, ErrCode.NOT_FOUND, "Key not found")
    return _served(rows[0])


@delete(f"{_V3}/room_keys/keys/{{room_id:str}}/{{session_id:str}}", status_code=200)
async def delete_room_key(
    key_backup: NamedDependency[KeyBackup],
    requester: NamedDependency[Requester],
    room_id: FromPath[str],
    session_id: FromPath[str],
    version: str | None = None,
) -> UpdateResponse:
    """DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
    return UpdateResponse(
        *await key_backup.delete_keys(
            requester, _required(version), path_value(room_id), path_value(session_id)
        )
    )


ROUTES: list[Any] = [
    create_backup_version,
    get_current_backup_version,
    get_backup_version,
    update_backup_version,
    delete_backup_version,
    put_room_keys,
    get_room_keys,
    delete_room_keys,
    put_room_keys_by_room,
    get_room_keys_by_room,
    delete_room_keys_by_room,
    put_room_key,
    get_room_key,
    delete_room_key,
]
