"""Device keys, one-time and fallback keys: upload, query, claim, changes.

https://spec.matrix.org/latest/client-server-api/#key-management-api

What is published is checked before anything is stored: device keys belong to the
requesting device and are signed by that device's ed25519 key (whose identity keys
never change), `signed_curve25519` one-time and fallback keys are signed by it too, and
a key ID is never reused for different content. A rejected upload stores nothing.

Claims run in one write unit on the single writer, and a claimed one-time key is
deleted in it, so no key is ever handed out twice, however many claims race.

For other writers of device keys (dehydrated devices): `validate_upload` (pure, off the
writer) then `store_upload(conn, ...)` inside their own write unit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import apsw
import msgspec
import nacl.signing

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.e2ee import device_lists
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.events.canonical_json import CanonicalJsonError, encode_canonical_json
from dendrite_lite.events.signing import (
    SignatureVerifyError,
    decode_base64,
    decode_verify_key,
    verify_signed_json,
)
from dendrite_lite.identifiers import split_user_id
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import devices, e2e_keys, streams, users
from dendrite_lite.storage.db import Database
from dendrite_lite.types import StreamPos

INVALID_SIGNATURE = "M_INVALID_SIGNATURE"
ED25519 = "ed25519"
CURVE25519 = "curve25519"
SIGNED_CURVE25519 = "signed_curve25519"
MAX_KEY_ID_BYTES = 255
# Per device and algorithm; clients keep about 50 published.
MAX_ONE_TIME_KEYS = 10_000
# Above this many keys an upload's signatures are checked on a worker thread, so that a
# large upload does not hold up the event loop.
VERIFY_INLINE_MAX = 16


def invalid_param(message: str) -> MatrixError:
    return MatrixError(400, ErrCode.INVALID_PARAM, message)


def bad_json(message: str) -> MatrixError:
    return MatrixError(400, ErrCode.BAD_JSON, message)


def invalid_signature(message: str) -> MatrixError:
    return MatrixError(400, INVALID_SIGNATURE, message)


# -- shared checks (cross_signing.py uses them too) ---------------------------------------


def canonical(value: Any, what: str) -> bytes:
    """Canonical JSON of `value`; floats and out-of-range integers are 400 M_BAD_JSON."""
    try:
        return encode_canonical_json(value)
    except CanonicalJsonError as exc:
        raise bad_json(f"{what} is not valid canonical JSON: {exc}") from None


def without_unsigned(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "unsigned"}


def signed_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def check_signatures_shape(obj: dict[str, Any], what: str, *, required: bool) -> None:
    """`signatures` is {user_id: {key_id: signature string}} (absent only if optional)."""
    signatures = obj.get("signatures")
    if signatures is None and not required:
        return
    if not isinstance(signatures, dict) or not all(
        isinstance(by_key, dict) and all(isinstance(s, str) for s in by_key.values())
        for by_key in signatures.values()
    ):
        raise bad_json(f"{what}.signatures must map user IDs to key IDs to signatures")


def ed25519_key(encoded: Any, what: str) -> nacl.signing.VerifyKey:
    if not isinstance(encoded, str):
        raise bad_json(f"{what} must be a string")
    try:
        return decode_verify_key(encoded)
    except ValueError:
        raise invalid_param(f"{what} is not an unpadded base64 ed25519 public key") from None


def check_curve25519(encoded: Any, what: str) -> None:
    if not isinstance(encoded, str):
        raise bad_json(f"{what} must be a string")
    try:
        raw = decode_base64(encoded)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise invalid_param(f"{what} is not an unpadded base64 curve25519 public key")


def verify(
    obj: dict[str, Any], user_id: str, key_id: str, key: nacl.signing.VerifyKey, what: str
) -> None:
    """Check `obj`'s signature by `user_id` with `key_id`: 400 M_INVALID_SIGNATURE if not."""
    try:
        verify_signed_json(obj, user_id, key_id, key)
    except SignatureVerifyError as exc:
        raise invalid_signature(f"{what}: {exc}") from None
    except CanonicalJsonError as exc:
        raise bad_json(f"{what} is not valid canonical JSON: {exc}") from None


def split_key_id(key_id: str, what: str) -> tuple[str, str]:
    """`<algorithm>:<id>` -> (algorithm, id); 400 M_INVALID_PARAM when malformed."""
    algorithm, sep, rest = key_id.partition(":")
    if not sep or not algorithm or not rest or len(key_id.encode()) > MAX_KEY_ID_BYTES:
        raise invalid_param(f"{what}: invalid key ID {key_id[:100]!r}, expected <algorithm>:<id>")
    if any(c.isspace() for c in key_id):
        raise invalid_param(f"{what}: invalid key ID {key_id[:100]!r}")
    return algorithm, rest


def check_user_id(user_id: str) -> str:
    """The server name of a user ID; 400 M_INVALID_PARAM when it is not one."""
    try:
        localpart, server = split_user_id(user_id)
    except ValueError:
        localpart = server = ""
    if not localpart or not server:
        raise invalid_param(f"Invalid user ID {user_id[:100]!r}")
    if len(user_id.encode()) > 255:
        raise invalid_param("User ID is too long")
    return server


def remote_failure(server: str) -> dict[str, Any]:
    return {"status": 503, "message": f"Cannot reach {server}: federation is not available"}


# -- upload --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidDeviceKeys:
    ed25519: str
    curve25519: str | None
    key_json: bytes


@dataclass(frozen=True)
class ValidKey:
    """A one-time or fallback key: `content` is what must match on re-upload."""

    algorithm: str
    key_id: str
    key_json: bytes
    content: bytes


@dataclass(frozen=True)
class ValidUpload:
    device_keys: ValidDeviceKeys | None = None
    one_time_keys: list[ValidKey] = field(default_factory=list)
    fallback_keys: list[ValidKey] = field(default_factory=list)


@dataclass(frozen=True)
class UploadResult:
    one_time_key_counts: dict[str, int]
    position: StreamPos | None = None  # the device-list change, if the keys changed
    wake: list[str] = field(default_factory=list)


def check_device_keys(obj: Any, user_id: str, device_id: str) -> ValidDeviceKeys:
    """Validate a DeviceKeys object uploaded by `device_id` of `user_id`."""
    if not isinstance(obj, dict):
        raise bad_json("device_keys must be an object")
    for name in ("user_id", "device_id"):
        if not isinstance(obj.get(name), str):
            raise bad_json(f"device_keys.{name} must be a string")
    if obj["user_id"] != user_id or obj["device_id"] != device_id:
        raise invalid_param("device_keys.user_id and device_id must be the requesting device's")
    algorithms = obj.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise bad_json("device_keys.algorithms must be a list of strings")
    keys = obj.get("keys")
    if not isinstance(keys, dict) or not keys:
        raise bad_json("device_keys.keys must be a non-empty object")
    for key_id, value in keys.items():
        _, key_device = split_key_id(key_id, "device_keys.keys")
        if key_device != device_id:
            raise invalid_param(f"device_keys.keys: {key_id!r} is not a key of {device_id}")
        if not isinstance(value, str):
            raise bad_json("device_keys.keys values must be strings")
    ed_id, curve_id = f"{ED25519}:{device_id}", f"{CURVE25519}:{device_id}"
    if ed_id not in keys:
        raise invalid_param(f"device_keys.keys must hold the device's {ed_id} key")
    key = ed25519_key(keys[ed_id], f"device_keys.keys.{ed_id}")
    curve = keys.get(curve_id)
    if curve is not None:
        check_curve25519(curve, f"device_keys.keys.{curve_id}")
    check_signatures_shape(obj, "device_keys", required=True)
    stored = without_unsigned(obj)
    verify(stored, user_id, ed_id, key, "device_keys")
    return ValidDeviceKeys(keys[ed_id], curve, canonical(stored, "device_keys"))


def check_key(
    key_name: str,
    value: Any,
    user_id: str,
    device_id: str,
    device_key: nacl.signing.VerifyKey | None,
    what: str,
) -> ValidKey:
    """Validate one one-time or fallback key `<algorithm>:<key_id>` -> key."""
    algorithm, key_id = split_key_id(key_name, what)
    if isinstance(value, str):
        if not value:
            raise bad_json(f"{what}.{key_name} must not be empty")
        if algorithm == SIGNED_CURVE25519:
            raise bad_json(f"{what}.{key_name}: a {SIGNED_CURVE25519} key is a signed object")
        encoded = canonical(value, what)
        return ValidKey(algorithm, key_id, encoded, encoded)
    if not isinstance(value, dict):
        raise bad_json(f"{what}.{key_name} must be a string or an object")
    check_signatures_shape(value, f"{what}.{key_name}", required=algorithm == SIGNED_CURVE25519)
    if "fallback" in value and not isinstance(value["fallback"], bool):
        raise bad_json(f"{what}.{key_name}.fallback must be a boolean")
    if algorithm == SIGNED_CURVE25519:
        check_curve25519(value.get("key"), f"{what}.{key_name}.key")
        if device_key is None:
            raise invalid_signature(
                f"{what}.{key_name}: no device keys to check its signature with; upload them"
            )
        verify(value, user_id, f"{ED25519}:{device_id}", device_key, f"{what}.{key_name}")
    stored = without_unsigned(value)
    content = {k: v for k, v in stored.items() if k != "signatures"}
    return ValidKey(
        algorithm, key_id, canonical(stored, what), canonical(content, f"{what}.{key_name}")
    )


def validate_upload(
    user_id: str,
    device_id: str,
    device_keys: Any,
    one_time_keys: Any,
    fallback_keys: Any,
    stored_ed25519: str | None,
) -> ValidUpload:
    """Check a /keys/upload body for the device; pure (no I/O), CPU-bound (signatures).

    `stored_ed25519`: the device's ed25519 key as already published, to check the
    signatures of one-time and fallback keys uploaded without device keys.
    """
    new_keys = None if device_keys is None else check_device_keys(device_keys, user_id, device_id)
    signing_key = new_keys.ed25519 if new_keys is not None else stored_ed25519
    verify_key = None if signing_key is None else decode_verify_key(signing_key)
    checked: dict[str, list[ValidKey]] = {}
    for what, keys in (("one_time_keys", one_time_keys), ("fallback_keys", fallback_keys)):
        if keys is None:
            keys = {}
        if not isinstance(keys, dict):
            raise bad_json(f"{what} must be an object")
        checked[what] = [
            check_key(name, value, user_id, device_id, verify_key, what)
            for name, value in keys.items()
        ]
    algorithms = [key.algorithm for key in checked["fallback_keys"]]
    if len(set(algorithms)) != len(algorithms):
        raise invalid_param("fallback_keys: at most one key per algorithm")
    return ValidUpload(new_keys, checked["one_time_keys"], checked["fallback_keys"])


def store_upload(
    conn: apsw.Connection, user_id: str, device_id: str, upload: ValidUpload
) -> UploadResult:
    """Store a validated upload, inside the caller's write unit (raises: nothing stored)."""
    position: StreamPos | None = None
    wake: list[str] = []
    new = upload.device_keys
    if new is not None:
        stored = e2e_keys.device_keys(conn, user_id, device_id)
        if stored is not None and (stored.ed25519, stored.curve25519) != (
            new.ed25519,
            new.curve25519,
        ):
            raise invalid_param(
                "A device's identity keys cannot change; log in as a new device instead"
            )
        if stored is None or stored.key_json != new.key_json:
            if stored is not None:  # what signed the old object does not sign the new one
                e2e_keys.delete_signatures_of(conn, user_id, e2e_keys.DEVICE, device_id)
            position, wake = device_lists.record_changes(conn, [(user_id, None)])
            e2e_keys.set_device_keys(
                conn, user_id, device_id, new.ed25519, new.curve25519, new.key_json, position
            )
    if upload.one_time_keys:
        existing = e2e_keys.one_time_keys(
            conn, user_id, device_id, ((k.algorithm, k.key_id) for k in upload.one_time_keys)
        )
        fresh = []
        for key in upload.one_time_keys:
            old = existing.get((key.algorithm, key.key_id))
            if old is None:
                fresh.append((key.algorithm, key.key_id, key.key_json))
            elif _content(old) != key.content:
                raise invalid_param(
                    f"One-time key {key.algorithm}:{key.key_id} already exists"
                    " with different content"
                )
        e2e_keys.add_one_time_keys(conn, user_id, device_id, fresh)
    for key in upload.fallback_keys:
        current = e2e_keys.fallback_key(conn, user_id, device_id, key.algorithm)
        if current is not None and current[0] == key.key_id:
            if _content(current[1]) != key.content:
                raise invalid_param(
                    f"Fallback key {key.algorithm}:{key.key_id} already exists"
                    " with different content"
                )
            continue  # the same key again: it stays used if it was
        e2e_keys.set_fallback_key(conn, user_id, device_id, key.algorithm, key.key_id, key.key_json)
    counts = device_lists.one_time_key_counts(conn, user_id, device_id)
    if any(count > MAX_ONE_TIME_KEYS for count in counts.values()):
        raise invalid_param(f"A device may hold at most {MAX_ONE_TIME_KEYS} one-time keys")
    return UploadResult(counts, position, wake)


def _content(key_json: bytes) -> bytes:
    """A stored key without its signatures (re-uploads may be signed afresh)."""
    value = msgspec.json.decode(key_json)
    if isinstance(value, dict):
        value.pop("signatures", None)
    return encode_canonical_json(value)


# -- the service ---------------------------------------------------------------------------


class DeviceKeys:
    def __init__(self, db: Database, notifier: Notifier, server_name: str) -> None:
        self.db = db
        self.notifier = notifier
        self.server_name = server_name

    async def upload(
        self, requester: Requester, device_keys: Any, one_time_keys: Any, fallback_keys: Any
    ) -> dict[str, int]:
        """POST /keys/upload: returns the device's one_time_key_counts."""
        user_id, device_id = requester.user_id, requester.device_id
        stored_ed25519 = None
        if device_keys is None and (one_time_keys or fallback_keys):
            stored = await self.db.read(lambda conn: e2e_keys.device_keys(conn, user_id, device_id))
            stored_ed25519 = None if stored is None else stored.ed25519
        count = len(one_time_keys or ()) + len(fallback_keys or ())
        args = (user_id, device_id, device_keys, one_time_keys, fallback_keys, stored_ed25519)
        if count > VERIFY_INLINE_MAX:
            upload = await asyncio.to_thread(validate_upload, *args)
        else:
            upload = validate_upload(*args)

        def store(conn: apsw.Connection) -> UploadResult:
            if devices.get(conn, user_id, device_id) is None:
                raise MatrixError(404, ErrCode.NOT_FOUND, "Unknown device")
            return store_upload(conn, user_id, device_id, upload)

        result = await self.db.write(store)
        if result.position is not None:
            self.notifier.notify(result.wake, result.position)
        return result.one_time_key_counts

    async def query(self, requester: Requester, wanted: dict[str, list[str]]) -> dict[str, Any]:
        """POST /keys/query."""
        failures: dict[str, Any] = {}
        local: dict[str, list[str]] = {}
        for user_id, device_ids in wanted.items():
            server = check_user_id(user_id)
            if server == self.server_name:
                local[user_id] = device_ids
            else:
                failures[server] = remote_failure(server)
        viewer = requester.user_id

        def read(conn: apsw.Connection) -> dict[str, Any]:
            return query_keys(conn, local, viewer)

        answer = await self.db.read(read) if local else _empty_query()
        answer["failures"] = failures
        return answer

    async def claim(
        self, requester: Requester, wanted: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        """POST /keys/claim: one key per (user, device, algorithm), each handed out once."""
        failures: dict[str, Any] = {}
        local: list[tuple[str, str, str]] = []
        for user_id, by_device in wanted.items():
            server = check_user_id(user_id)
            for algorithm in by_device.values():
                if not algorithm or len(algorithm.encode()) > MAX_KEY_ID_BYTES:
                    raise invalid_param(f"Invalid algorithm {algorithm[:100]!r}")
            if server != self.server_name:
                failures[server] = remote_failure(server)
                continue
            local.extend((user_id, device_id, alg) for device_id, alg in by_device.items())

        def take(conn: apsw.Connection) -> dict[str, dict[str, dict[str, msgspec.Raw]]]:
            claimed: dict[str, dict[str, dict[str, msgspec.Raw]]] = {}
            for user_id, device_id, algorithm in local:
                key = e2e_keys.claim_one_time_key(conn, user_id, device_id, algorithm)
                if key is None:
                    key = e2e_keys.claim_fallback_key(conn, user_id, device_id, algorithm)
                if key is not None:
                    claimed.setdefault(user_id, {})[device_id] = {
                        f"{algorithm}:{key[0]}": msgspec.Raw(key[1])
                    }
            return claimed

        claimed = await self.db.write(take) if local else {}
        return {"one_time_keys": claimed, "failures": failures}

    async def changes(
        self, requester: Requester, from_token: str, to_token: str | None
    ) -> dict[str, list[str]]:
        """GET /keys/changes: (changed, left) between two sync tokens."""
        since = parse_stream_token(from_token, "from")
        upto = None if to_token is None else parse_stream_token(to_token, "to")

        def read(conn: apsw.Connection) -> tuple[list[str], list[str]]:
            now = streams.current_position(conn)
            end = now if upto is None else min(upto, now)
            return device_lists.device_list_changes(conn, requester.user_id, since, end)

        changed, left = await self.db.read(read)
        return {"changed": changed, "left": left}


def parse_stream_token(token: str, name: str) -> int:
    """The stream position of a sync token: `s<pos>` or `s<pos>_<typing>_<to-device>`."""
    head = token.split("_", 1)[0]
    if len(token) > 128 or not head.startswith("s") or not head[1:].isdigit():
        raise invalid_param(f"Invalid {name} token {token[:100]!r}")
    digits = head[1:]
    if len(digits) > 18:
        raise invalid_param(f"Invalid {name} token {token[:100]!r}")
    return int(digits)


def _empty_query() -> dict[str, Any]:
    return {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}, "user_signing_keys": {}}


def _merge_signatures(obj: dict[str, Any], extra: dict[str, dict[str, str]] | None) -> None:
    if not extra:
        return
    signatures = obj.setdefault("signatures", {})
    for signer, by_key in extra.items():
        mine = signatures.setdefault(signer, {})
        for key_id, signature in by_key.items():
            mine.setdefault(key_id, signature)


def query_keys(conn: apsw.Connection, wanted: dict[str, list[str]], viewer: str) -> dict[str, Any]:
    """The /keys/query answer for local users, as `viewer` may see it (one read unit).

    A queried user who exists is always in `device_keys` (an empty map when no device
    has keys), so that clients drop the devices that are gone.
    """
    answer = _empty_query()
    cross = e2e_keys.cross_signing_keys(conn, wanted)
    for user_id, device_ids in wanted.items():
        if not users.exists(conn, user_id):
            continue
        signatures = e2e_keys.signatures_for(conn, user_id, viewer)
        served: dict[str, Any] = {}
        for row in e2e_keys.served_device_keys(conn, user_id, device_ids):
            obj = msgspec.json.decode(row.key_json)
            _merge_signatures(obj, signatures.get((e2e_keys.DEVICE, row.device_id)))
            if row.display_name is not None:
                obj["unsigned"] = {"device_display_name": row.display_name}
            served[row.device_id] = obj
        answer["device_keys"][user_id] = served
        master = cross.get((user_id, "master"))
        if master is not None:
            obj = msgspec.json.decode(master.key_json)
            _merge_signatures(obj, signatures.get((e2e_keys.MASTER, master.public_key)))
            answer["master_keys"][user_id] = obj
        self_signing = cross.get((user_id, "self_signing"))
        if self_signing is not None:
            answer["self_signing_keys"][user_id] = msgspec.json.decode(self_signing.key_json)
        user_signing = cross.get((user_id, "user_signing"))
        if user_signing is not None and user_id == viewer:
            answer["user_signing_keys"][user_id] = msgspec.json.decode(user_signing.key_json)
    return answer
