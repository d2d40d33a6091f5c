"""Dehydrated devices, MSC3814 (unstable prefix org.matrix.msc3814.v1).

https://github.com/matrix-org/matrix-spec-proposals/pull/3814

A user has at most one dehydrated device: a real row of ``devices`` (without tokens), so
to-device messages sent to it (or to ``*``) land in its inbox like any device's. A
client uploads it with its keys in one request (PUT), and a later client of the same
user fetches it (GET) and pages through its to-device inbox (POST .../events), then
replaces or deletes it. Uploading replaces (deletes) the previous one.

Paging does not consume the inbox: the MSC asks that a rehydration which is interrupted
(for instance because the rehydrating device is deleted) can start again, possibly from
another device. The messages go with the device, when it is replaced or deleted.

The device's keys go through the same checks and store as /keys/upload, in the same
write unit that creates the device, so /keys/query and /keys/claim serve it and the
user's device list changes; deleting the device deletes its keys with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.e2ee.device_keys import ValidUpload, store_upload, validate_upload
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, not_found
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import dehydrated_devices, devices
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.dehydrated_devices import DehydratedDeviceRow, InboxMessage
from dendrite_lite.types import DeviceId, StreamPos, UserId

MAX_DEVICE_ID_BYTES = 255
MAX_DISPLAY_NAME_CHARS = 1000
MAX_DEVICE_DATA_BYTES = 128 * 1024
DEFAULT_EVENTS_LIMIT = 100
MAX_EVENTS_LIMIT = 1000

# next_batch tokens: "d<stream position>_<seq>", the last message handed out.
_TOKEN = re.compile(r"d([0-9]{1,18})_([0-9]{1,9})")


@dataclass(frozen=True)
class DehydratedDeviceUpload:
    """PUT /dehydrated_device, the JSON objects as uploaded."""

    device_id: str
    device_data: bytes
    initial_device_display_name: str | None
    device_keys: bytes
    one_time_keys: bytes
    fallback_keys: bytes


class _DeviceData(msgspec.Struct):
    algorithm: str


class _DeviceKeys(msgspec.Struct):
    """The parts of a device_keys object checked here; the keys store checks the rest."""

    user_id: str
    device_id: str
    algorithms: list[str]
    keys: dict[str, str]
    signatures: dict[str, dict[str, str]] | None = None


_KeyMap = dict[str, str | dict[str, Any]]


def _decode_part(raw: bytes, kind: Any, what: str) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        detail = str(exc).replace("`$.", f"`{what}.").replace("`$", f"`{what}")
        raise MatrixError(400, ErrCode.BAD_JSON, f"Invalid {what}: {detail}") from None


def check_upload(user_id: str, upload: DehydratedDeviceUpload) -> None:
    device_id = upload.device_id
    if not device_id or len(device_id.encode()) > MAX_DEVICE_ID_BYTES:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid device_id")
    if (
        upload.initial_device_display_name is not None
        and len(upload.initial_device_display_name) > MAX_DISPLAY_NAME_CHARS
    ):
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Display name is too long")
    if len(upload.device_data) > MAX_DEVICE_DATA_BYTES:
        raise MatrixError(413, ErrCode.TOO_LARGE, "device_data is too large")
    data: _DeviceData = _decode_part(upload.device_data, _DeviceData, "device_data")
    if not data.algorithm:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "device_data needs an algorithm")
    keys: _DeviceKeys = _decode_part(upload.device_keys, _DeviceKeys, "device_keys")
    if keys.user_id != user_id:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "device_keys.user_id is not yours")
    if keys.device_id != device_id:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "device_keys.device_id is not device_id")
    for what, raw in (
        ("one_time_keys", upload.one_time_keys),
        ("fallback_keys", upload.fallback_keys),
    ):
        for key_id in _decode_part(raw, _KeyMap, what):
            algorithm, sep, name = key_id.partition(":")
            if not (algorithm and sep and name):
                raise MatrixError(
                    400, ErrCode.INVALID_PARAM, f"Invalid key ID {key_id!r} in {what}"
                )


def validated_keys(user_id: str, upload: DehydratedDeviceUpload) -> ValidUpload:
    """The upload's keys checked as /keys/upload checks them (signatures included)."""
    return validate_upload(
        user_id,
        upload.device_id,
        msgspec.json.decode(upload.device_keys),
        msgspec.json.decode(upload.one_time_keys),
        msgspec.json.decode(upload.fallback_keys),
        None,
    )


def _remove(conn: apsw.Connection, user_id: str, device_id: str) -> StreamPos | None:
    """The device and everything of it: its row (which takes the dehydrated_devices row
    with it), its keys (storage.devices.delete) and its to-device inbox.

    Returns the stream position of the device-list change, when deleting the device
    logged one (storage.devices.delete does when the device had published keys).
    """
    dehydrated_devices.delete_inbox(conn, user_id, device_id)
    return devices.delete(conn, user_id, [device_id])


def parse_token(token: str | None) -> tuple[int, int]:
    if token is None:
        return (0, 0)  # stream positions start at 1
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"Invalid next_batch {token!r}")
    return int(match[1]), int(match[2])


def make_token(position: tuple[int, int]) -> str:
    return f"d{position[0]}_{position[1]}"


class DehydratedDevices:
    def __init__(self, db: Database, notifier: Notifier) -> None:
        self.db = db
        self.notifier = notifier

    def _device_list_changed(self, user_id: str, position: StreamPos | None) -> None:
        if position is not None:
            self.notifier.notify([user_id], position)

    async def put(self, requester: Requester, upload: DehydratedDeviceUpload) -> str:
        """PUT /dehydrated_device: create the device, replacing (deleting) any previous one."""
        user_id = requester.user_id
        check_upload(user_id, upload)
        keys = validated_keys(user_id, upload)

        def store(conn: apsw.Connection) -> tuple[StreamPos | None, list[str]]:
            changed = None
            previous = dehydrated_devices.get(conn, user_id)
            if previous is not None:
                changed = _remove(conn, user_id, previous.device_id)
            if devices.get(conn, user_id, upload.device_id) is not None:
                # Another (real) device of the user has this ID: never take it over.
                raise MatrixError(400, ErrCode.INVALID_PARAM, "device_id is already in use")
            devices.upsert(
                conn,
                UserId(user_id),
                DeviceId(upload.device_id),
                upload.initial_device_display_name,
                now_ms(),
            )
            dehydrated_devices.insert(conn, user_id, upload.device_id, upload.device_data, now_ms())
            stored = store_upload(conn, user_id, upload.device_id, keys)
            return stored.position or changed, stored.wake

        position, wake = await self.db.write(store)
        self._device_list_changed(user_id, position)
        if position is not None and wake:
            self.notifier.notify(wake, position)
        return upload.device_id

    async def get(self, requester: Requester) -> DehydratedDeviceRow:
        """GET /dehydrated_device"""
        row = await self.db.read(lambda conn: dehydrated_devices.get(conn, requester.user_id))
        if row is None:
            raise not_found("No dehydrated device available")
        return row

    async def delete(self, requester: Requester) -> str:
        """DELETE /dehydrated_device: the device ID that was deleted."""
        user_id = requester.user_id

        def remove(conn: apsw.Connection) -> tuple[str, StreamPos | None]:
            row = dehydrated_devices.get(conn, user_id)
            if row is None:
                raise not_found("No dehydrated device available")
            return row.device_id, _remove(conn, user_id, row.device_id)

        device_id, changed = await self.db.write(remove)
        self._device_list_changed(user_id, changed)
        return device_id

    async def events(
        self, requester: Requester, device_id: str, next_batch: str | None, limit: int
    ) -> tuple[list[InboxMessage], str]:
        """POST /dehydrated_device/{deviceId}/events: one page of the device's inbox.

        The answer always carries a next_batch; the page after the last message is empty
        (and repeats the token), which tells the client it has everything.
        """
        after = parse_token(next_batch)
        limit = min(limit, MAX_EVENTS_LIMIT)
        user_id = requester.user_id

        def read(conn: apsw.Connection) -> list[InboxMessage]:
            row = dehydrated_devices.get(conn, user_id)
            if row is None:
                raise forbidden("No dehydrated device exists")
            if row.device_id != device_id:
                raise forbidden("You may only fetch messages for your dehydrated device")
            return dehydrated_devices.inbox_page(conn, user_id, device_id, after, limit)

        messages = await self.db.read(read)
        last = (messages[-1].stream_pos, messages[-1].seq) if messages else after
        return messages, make_token(last)
