"""Server-side key backups: https://spec.matrix.org/latest/client-server-api/#server-side-key-backups

A user has numbered backup versions; keys are written only to the current one (the
newest not deleted) and read or deleted in any existing one. ``auth_data`` and each
key's ``session_data`` are kept as the bytes the client uploaded and served as they are.
Versions are strings on the wire and integers here; a version string that is not the
decimal form of an issued version is simply unknown (404).
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError, not_found
from dendrite_lite.storage import key_backup
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.key_backup import KeyRow, NewKey, VersionRow

# The spec's only backup algorithm; other (namespaced) algorithms are stored opaquely,
# as Synapse does, so that clients trying e.g. MSC3270 backups are not refused.
MEGOLM_BACKUP_V1 = "m.megolm_backup.v1.curve25519-aes-sha2"
# Not in errors.ErrCode (yet): the key-backup errcode for writing to an old version.

MAX_ALGORITHM_BYTES = 255
MAX_ID_BYTES = 255  # room IDs, session IDs
MAX_AUTH_DATA_BYTES = 64 * 1024
MAX_SESSION_DATA_BYTES = 64 * 1024
MAX_INDEX = 2**53 - 1  # the canonical-JSON integer range
_MAX_VERSION_DIGITS = 18


@dataclass(frozen=True)
class VersionInfo:
    version: str
    algorithm: str
    auth_data: bytes
    count: int
    etag: str


@dataclass(frozen=True)
class UploadedKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: bytes  # the JSON as uploaded


class _V1AuthData(msgspec.Struct):
    public_key: str


def is_json_object(raw: bytes) -> bool:
    """Whether an already-validated JSON value (msgspec.Raw bytes) is an object."""
    return raw[:1] == b"{"


def parse_version(version: str) -> int | None:
    """The version number, or None when `version` is not one this server could have issued."""
    if not (0 < len(version) <= _MAX_VERSION_DIGITS and version.isascii() and version.isdigit()):
        return None
    number = int(version)
    return number if str(number) == version else None


def check_room_id(room_id: str) -> None:
    if not room_id.startswith("!") or len(room_id.encode()) > MAX_ID_BYTES:
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"{room_id!r} is not a valid room ID")


def check_session_id(session_id: str) -> None:
    if not session_id or len(session_id.encode()) > MAX_ID_BYTES:
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"{session_id!r} is not a valid session ID")


def check_key(key: UploadedKey) -> None:
    check_room_id(key.room_id)
    check_session_id(key.session_id)
    if not 0 <= key.first_message_index <= MAX_INDEX:
        raise MatrixError(400, ErrCode.BAD_JSON, "first_message_index is out of range")
    if not 0 <= key.forwarded_count <= MAX_INDEX:
        raise MatrixError(400, ErrCode.BAD_JSON, "forwarded_count is out of range")
    if not is_json_object(key.session_data):
        raise MatrixError(400, ErrCode.BAD_JSON, "session_data must be an object")
    if len(key.session_data) > MAX_SESSION_DATA_BYTES:
        raise MatrixError(413, ErrCode.TOO_LARGE, "session_data is too large")


def _check_backup(algorithm: str, auth_data: bytes) -> None:
    if not algorithm or len(algorithm.encode()) > MAX_ALGORITHM_BYTES:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid algorithm")
    if not is_json_object(auth_data):
        raise MatrixError(400, ErrCode.BAD_JSON, "auth_data must be an object")
    if len(auth_data) > MAX_AUTH_DATA_BYTES:
        raise MatrixError(413, ErrCode.TOO_LARGE, "auth_data is too large")
    if algorithm == MEGOLM_BACKUP_V1:
        try:
            msgspec.json.decode(auth_data, type=_V1AuthData, strict=True)
        except msgspec.ValidationError:
            raise MatrixError(
                400, ErrCode.BAD_JSON, f"auth_data of {MEGOLM_BACKUP_V1} needs a public_key string"
            ) from None


def _info(row: VersionRow) -> VersionInfo:
    return VersionInfo(str(row.version), row.algorithm, row.auth_data, row.count, str(row.etag))


def _unknown_version() -> MatrixError:
    return not_found("Unknown backup version")


def _existing(conn: apsw.Connection, user_id: str, version: str) -> VersionRow:
    number = parse_version(version)
    row = None if number is None else key_backup.get_version(conn, user_id, number)
    if row is None or row.deleted:
        raise _unknown_version()
    return row


class KeyBackup:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- versions ------------------------------------------------------------------------

    async def create_version(self, requester: Requester, algorithm: str, auth_data: bytes) -> str:
        """POST /room_keys/version: the new version becomes the current one."""
        _check_backup(algorithm, auth_data)
        user_id = requester.user_id

        def create(conn: apsw.Connection) -> int:
            return key_backup.create_version(conn, user_id, algorithm, auth_data)

        return str(await self.db.write(create))

    async def get_version(self, requester: Requester, version: str | None) -> VersionInfo:
        """GET /room_keys/version[/{version}]: the current version when `version` is None."""
        user_id = requester.user_id

        def read(conn: apsw.Connection) -> VersionRow:
            if version is not None:
                return _existing(conn, user_id, version)
            row = key_backup.current_version(conn, user_id)
            if row is None:
                raise not_found("No current backup version")
            return row

        return _info(await self.db.read(read))

    async def update_version(
        self,
        requester: Requester,
        version: str,
        algorithm: str,
        auth_data: bytes,
        body_version: str | None,
    ) -> None:
        """PUT /room_keys/version/{version}: only auth_data changes."""
        if body_version is not None and body_version != version:
            raise MatrixError(
                400, ErrCode.INVALID_PARAM, "version in the body does not match the path"
            )
        _check_backup(algorithm, auth_data)
        user_id = requester.user_id

        def update(conn: apsw.Connection) -> None:
            row = _existing(conn, user_id, version)
            if row.algorithm != algorithm:
                raise MatrixError(400, ErrCode.INVALID_PARAM, "Algorithm does not match")
            key_backup.update_auth_data(conn, user_id, row.version, auth_data)

        await self.db.write(update)

    async def delete_version(self, requester: Requester, version: str) -> None:
        """DELETE /room_keys/version/{version}: the version and all its keys.

        Deleting a version that was already deleted succeeds; one never created is 404.
        """
        user_id = requester.user_id
        number = parse_version(version)
        if number is None:
            raise _unknown_version()

        def delete(conn: apsw.Connection) -> None:
            row = key_backup.get_version(conn, user_id, number)
            if row is None:
                raise _unknown_version()
            if not row.deleted:
                key_backup.mark_deleted(conn, user_id, number)

        await self.db.write(delete)

    # -- keys ----------------------------------------------------------------------------

    async def put_keys(
        self, requester: Requester, version: str, keys: list[UploadedKey]
    ) -> tuple[str, int]:
        """PUT /room_keys/keys[...]: store keys in the current version; (etag, count).

        One write unit however many keys. Writing to any version but the current one is
        403 M_WRONG_ROOM_KEYS_VERSION naming the current version; with no backup at all
        it is 404.
        """
        for key in keys:
            check_key(key)
        rows: list[NewKey] = [
            (
                key.room_id,
                key.session_id,
                key.first_message_index,
                key.forwarded_count,
                key.is_verified,
                key.session_data,
            )
            for key in keys
        ]
        user_id = requester.user_id

        def store(conn: apsw.Connection) -> tuple[int, int]:
            current = key_backup.current_version(conn, user_id)
            if current is None:
                raise _unknown_version()
            if parse_version(version) != current.version:
                raise MatrixError(
                    403,
                    ErrCode.WRONG_ROOM_KEYS_VERSION,
                    "Wrong backup version",
                    current_version=str(current.version),
                )
            if not rows:
                return current.etag, current.count
            return key_backup.store_keys(conn, user_id, current, rows)

        etag, count = await self.db.write(store)
        return str(etag), count

    async def get_keys(
        self,
        requester: Requester,
        version: str,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> list[KeyRow]:
        """GET /room_keys/keys[...]: the keys of any existing version."""
        if room_id is not None:
            check_room_id(room_id)
        if session_id is not None:
            check_session_id(session_id)
        user_id = requester.user_id

        def read(conn: apsw.Connection) -> list[KeyRow]:
            row = _existing(conn, user_id, version)
            return key_backup.get_keys(conn, user_id, row.version, room_id, session_id)

        return await self.db.read(read)

    async def delete_keys(
        self,
        requester: Requester,
        version: str,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> tuple[str, int]:
        """DELETE /room_keys/keys[...]: delete keys of any existing version; (etag, count)."""
        if room_id is not None:
            check_room_id(room_id)
        if session_id is not None:
            check_session_id(session_id)
        user_id = requester.user_id

        def delete(conn: apsw.Connection) -> tuple[int, int]:
            row = _existing(conn, user_id, version)
            return key_backup.delete_keys(conn, user_id, row, room_id, session_id)

        etag, count = await self.db.write(delete)
        return str(etag), count
