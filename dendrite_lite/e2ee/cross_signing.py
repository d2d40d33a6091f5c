"""Cross-signing keys and signatures.

https://spec.matrix.org/latest/client-server-api/#cross-signing

- /keys/device_signing/upload: a user's master, self-signing and user-signing keys. The
  self-signing and user-signing keys must be signed by the master key (the one uploaded
  with them, or the stored one). User-interactive auth is asked for unless the user has
  no master key yet or the request holds nothing new (an idempotent retry). Replacing the
  master key drops the self-signing and user-signing keys it signed unless new ones come
  with it, and the signatures the replaced keys made or received.
- /keys/signatures/upload: signatures of the user's own devices by their self-signing
  key, of their own master key by their devices, and of other users' master keys by
  their user-signing key. Each is checked against the key it claims and the object it
  signs must be the stored one; the ones that fail are reported per key in `failures`,
  the others are stored and served (to whom the spec allows) by /keys/query.

Both run their checks inside the write unit, against the keys as they are at that
moment: a signature can never be stored against a key replaced meanwhile.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec
import nacl.signing

from dendrite_lite.accounts.account import Account
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.e2ee import device_lists
from dendrite_lite.e2ee.device_keys import (
    ED25519,
    INVALID_SIGNATURE,
    bad_json,
    canonical,
    check_signatures_shape,
    check_user_id,
    ed25519_key,
    invalid_param,
    signed_part,
    verify,
    without_unsigned,
)
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.events.signing import decode_base64
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import devices, e2e_keys
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.e2e_keys import Signature, StoredCrossSigningKey
from dendrite_lite.types import StreamPos

MASTER = "master"
SELF_SIGNING = "self_signing"
USER_SIGNING = "user_signing"
KEY_TYPES = (MASTER, SELF_SIGNING, USER_SIGNING)
MAX_SIGNED_OBJECTS = 1000


@dataclass(frozen=True)
class ValidCrossSigningKey:
    key_type: str
    public_key: str
    verify_key: nacl.signing.VerifyKey
    obj: dict[str, Any]  # as uploaded, without `unsigned`
    key_json: bytes


def check_cross_signing_key(obj: Any, user_id: str, key_type: str) -> ValidCrossSigningKey:
    """Validate the shape of an uploaded CrossSigningKey of `key_type` for `user_id`."""
    what = f"{key_type}_key"
    if not isinstance(obj, dict):
        raise bad_json(f"{what} must be an object")
    if not isinstance(obj.get("user_id"), str):
        raise bad_json(f"{what}.user_id must be a string")
    if obj["user_id"] != user_id:
        raise invalid_param(f"{what}.user_id must be the requesting user")
    usage = obj.get("usage")
    if not isinstance(usage, list) or not all(isinstance(u, str) for u in usage):
        raise bad_json(f"{what}.usage must be a list of strings")
    if key_type not in usage:
        raise invalid_param(f"{what}.usage must include {key_type!r}")
    keys = obj.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise invalid_param(f"{what}.keys must hold exactly one key")
    [(key_id, public_key)] = keys.items()
    verify_key = ed25519_key(public_key, f"{what}.keys")
    if key_id != f"{ED25519}:{public_key}":
        raise invalid_param(f"{what}.keys: the key ID must be ed25519:<the public key>")
    check_signatures_shape(obj, what, required=False)
    stored = without_unsigned(obj)
    return ValidCrossSigningKey(key_type, public_key, verify_key, stored, canonical(stored, what))


@dataclass(frozen=True)
class _Outcome:
    position: StreamPos | None
    wake: list[str]


_NEEDS_AUTH = object()


class _Failure(Exception):
    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(message)
        self.json = {"errcode": errcode, "error": message}


class CrossSigning:
    def __init__(self, db: Database, notifier: Notifier, account: Account) -> None:
        self.db = db
        self.notifier = notifier
        self.account = account
        # The m.oauth stage for OAuth sessions (oauth/server.py): True when the user
        # approved the reset on the account page, False to fall back to UIA.
        self.oauth_reset: Callable[[Requester, dict[str, Any] | None], Awaitable[bool]] | None = (
            None
        )

    # -- /keys/device_signing/upload ---------------------------------------------------------

    async def upload_keys(
        self,
        requester: Requester,
        keys: dict[str, Any],
        auth: dict[str, Any] | None,
        uri: str,
    ) -> None:
        """Publish cross-signing keys: {key type: CrossSigningKey or None}."""
        user_id = requester.user_id
        new = {
            key_type: check_cross_signing_key(obj, user_id, key_type)
            for key_type, obj in keys.items()
            if obj is not None
        }
        authenticated = False
        while True:
            store = functools.partial(
                self._store_keys, user_id=user_id, new=new, authenticated=authenticated
            )
            outcome = await self.db.write(store)
            if outcome is not _NEEDS_AUTH:
                break
            # Valid, but it replaces keys: prove it is the owner, then store for real.
            if self.oauth_reset is None or not await self.oauth_reset(requester, auth):
                await self.account.authenticate_owner(requester, auth, "POST", uri)
            authenticated = True
        assert isinstance(outcome, _Outcome)
        if outcome.position is not None:
            self.notifier.notify(outcome.wake, outcome.position)

    @staticmethod
    def _store_keys(
        conn: apsw.Connection,
        *,
        user_id: str,
        new: dict[str, ValidCrossSigningKey],
        authenticated: bool,
    ) -> _Outcome | object:
        current = {
            key_type: key
            for (_, key_type), key in e2e_keys.cross_signing_keys(conn, [user_id]).items()
        }
        master = new.get(MASTER)
        master_key = master.verify_key if master is not None else None
        master_public = master.public_key if master is not None else None
        if master is None and MASTER in current:
            master_public = current[MASTER].public_key
            master_key = nacl.signing.VerifyKey(_raw(master_public))
        if master_key is None or master_public is None:
            raise MatrixError(400, ErrCode.MISSING_PARAM, "No master key available")
        for key_type in (SELF_SIGNING, USER_SIGNING):
            key = new.get(key_type)
            if key is not None:
                verify(
                    key.obj,
                    user_id,
                    f"{ED25519}:{master_public}",
                    master_key,
                    f"{key_type}_key must be signed by the master key",
                )
        device_ids = {row.device_id for row in devices.list_for_user(conn, user_id)}
        for key in new.values():
            if key.public_key in device_ids:
                raise MatrixError(
                    403, ErrCode.FORBIDDEN, f"The {key.key_type} key's ID is one of your devices"
                )
        changed = [
            key for key in new.values() if _json_of(current.get(key.key_type)) != key.key_json
        ]
        if not changed:
            return _Outcome(None, [])
        if MASTER in current and not authenticated:
            return _NEEDS_AUTH
        replaced = {
            key.key_type: current[key.key_type].public_key
            for key in changed
            if key.key_type in current and current[key.key_type].public_key != key.public_key
        }
        if MASTER in replaced:
            e2e_keys.delete_signatures_of(conn, user_id, e2e_keys.MASTER, replaced[MASTER])
            # What the old master key signed cannot verify any more.
            for key_type in (SELF_SIGNING, USER_SIGNING):
                if key_type in current and key_type not in new:
                    e2e_keys.delete_cross_signing_key(conn, user_id, key_type)
                    replaced[key_type] = current[key_type].public_key
        for public_key in replaced.values():
            e2e_keys.delete_signatures_by(conn, user_id, f"{ED25519}:{public_key}")
        # The user-signing key is only ever seen by its owner.
        public = any(key.key_type != USER_SIGNING for key in changed) or SELF_SIGNING in replaced
        position, wake = device_lists.record_changes(conn, [(user_id, None if public else user_id)])
        for key in changed:
            e2e_keys.set_cross_signing_key(
                conn, user_id, key.key_type, key.public_key, key.key_json, position
            )
        return _Outcome(position, wake)

    # -- /keys/signatures/upload -------------------------------------------------------------

    async def upload_signatures(
        self, requester: Requester, signed: dict[str, dict[str, dict[str, Any]]]
    ) -> dict[str, Any]:
        """Store the valid signatures; answer {"failures": {user: {key ID: error}}}."""
        if sum(len(by_key) for by_key in signed.values()) > MAX_SIGNED_OBJECTS:
            raise MatrixError(413, ErrCode.TOO_LARGE, "Too many signed objects at once")
        for target in signed:
            check_user_id(target)
        process = functools.partial(_store_signatures, signer=requester.user_id, signed=signed)
        failures, outcome = await self.db.write(process)
        if outcome.position is not None:
            self.notifier.notify(outcome.wake, outcome.position)
        return {"failures": failures}


def _store_signatures(
    conn: apsw.Connection, *, signer: str, signed: dict[str, dict[str, dict[str, Any]]]
) -> tuple[dict[str, dict[str, Any]], _Outcome]:
    keys = e2e_keys.cross_signing_keys(conn, signed.keys() | {signer})
    failures: dict[str, dict[str, Any]] = {}
    found: list[Signature] = []
    own = signed.get(signer, {})
    if own:
        device_keys = e2e_keys.all_device_keys(conn, signer)
        known = e2e_keys.signatures_for(conn, signer, signer)
        for key_id, obj in own.items():
            try:
                found.extend(_own_signatures(signer, key_id, obj, keys, device_keys, known))
            except _Failure as failure:
                failures.setdefault(signer, {})[key_id] = failure.json
    for target, by_key in signed.items():
        if target == signer:
            continue
        for key_id, obj in by_key.items():
            try:
                found.append(_other_signature(signer, target, key_id, obj, keys))
            except _Failure as failure:
                failures.setdefault(target, {})[key_id] = failure.json
    if not found:
        return failures, _Outcome(None, [])
    e2e_keys.add_signatures(conn, found)
    changes: dict[str, str | None] = {}
    for signature in found:
        # Signatures of one's own keys are for everyone; a user-signing key's, for its owner.
        changes[signature.target_user_id] = None if signature.target_user_id == signer else signer
    position, wake = device_lists.record_changes(conn, changes.items())
    return failures, _Outcome(position, wake)


def _own_signatures(
    user_id: str,
    key_id: str,
    obj: dict[str, Any],
    keys: dict[tuple[str, str], StoredCrossSigningKey],
    device_keys: dict[str, e2e_keys.StoredDeviceKeys],
    known: dict[tuple[str, str], dict[str, dict[str, str]]],
) -> list[Signature]:
    """Signatures of one of the user's devices (by their self-signing key), or of their
    master key (by their devices; those it already has are skipped)."""
    signatures = _signatures_by(obj, user_id)
    master = keys.get((user_id, MASTER))
    if master is not None and key_id == master.public_key:
        _same_key(obj, master.key_json)
        already = dict(msgspec.json.decode(master.key_json).get("signatures", {}).get(user_id, {}))
        already.update(known.get((e2e_keys.MASTER, key_id), {}).get(user_id, {}))
        found = []
        for signer_key_id, signature in signatures.items():
            if already.get(signer_key_id) == signature:
                continue
            algorithm, _, device_id = signer_key_id.partition(":")
            device = device_keys.get(device_id)
            if algorithm != ED25519 or device is None:
                raise _Failure(INVALID_SIGNATURE, f"{signer_key_id} is not one of your devices")
            _verify(obj, user_id, signer_key_id, device.ed25519)
            found.append(
                Signature(user_id, e2e_keys.MASTER, key_id, user_id, signer_key_id, signature)
            )
        return found  # nothing new (a retried request) is no failure
    device = device_keys.get(key_id)
    if device is None:
        raise _Failure(ErrCode.NOT_FOUND, "Unknown device")
    self_signing = keys.get((user_id, SELF_SIGNING))
    if self_signing is None:
        raise _Failure(ErrCode.NOT_FOUND, "No self-signing key")
    _same_key(obj, device.key_json)
    signer_key_id = f"{ED25519}:{self_signing.public_key}"
    if signer_key_id not in signatures:
        raise _Failure(INVALID_SIGNATURE, "No signature by the self-signing key")
    _verify(obj, user_id, signer_key_id, self_signing.public_key)
    return [
        Signature(
            user_id, e2e_keys.DEVICE, key_id, user_id, signer_key_id, signatures[signer_key_id]
        )
    ]


def _other_signature(
    signer: str,
    target: str,
    key_id: str,
    obj: dict[str, Any],
    keys: dict[tuple[str, str], StoredCrossSigningKey],
) -> Signature:
    """A signature of another user's master key by the signer's user-signing key."""
    user_signing = keys.get((signer, USER_SIGNING))
    if user_signing is None:
        raise _Failure(ErrCode.NOT_FOUND, "No user-signing key")
    master = keys.get((target, MASTER))
    if master is None or master.public_key != key_id:
        raise _Failure(ErrCode.NOT_FOUND, f"{key_id} is not {target}'s master key")
    signatures = _signatures_by(obj, signer)
    _same_key(obj, master.key_json)
    signer_key_id = f"{ED25519}:{user_signing.public_key}"
    if signer_key_id not in signatures:
        raise _Failure(INVALID_SIGNATURE, "No signature by the user-signing key")
    _verify(obj, signer, signer_key_id, user_signing.public_key)
    return Signature(
        target, e2e_keys.MASTER, key_id, signer, signer_key_id, signatures[signer_key_id]
    )


def _signatures_by(obj: dict[str, Any], user_id: str) -> dict[str, str]:
    signatures = obj.get("signatures")
    mine = signatures.get(user_id) if isinstance(signatures, dict) else None
    if not isinstance(mine, dict) or not mine:
        raise _Failure(INVALID_SIGNATURE, f"No signature by {user_id}")
    if not all(isinstance(s, str) for s in mine.values()):
        raise _Failure(ErrCode.BAD_JSON, "Signatures must be strings")
    return mine


def _same_key(obj: dict[str, Any], stored_json: bytes) -> None:
    """The signed object must be the stored key (signatures and `unsigned` aside)."""
    try:
        same = canonical(signed_part(obj), "key") == canonical(
            signed_part(msgspec.json.decode(stored_json)), "key"
        )
    except MatrixError as exc:
        raise _Failure(exc.errcode, exc.message) from None
    if not same:
        raise _Failure(ErrCode.UNKNOWN, "Key does not match the stored key")


def _verify(obj: dict[str, Any], user_id: str, key_id: str, public_key: str) -> None:
    try:
        verify(obj, user_id, key_id, nacl.signing.VerifyKey(_raw(public_key)), "signature")
    except MatrixError as exc:
        raise _Failure(exc.errcode, exc.message) from None


def _raw(public_key: str) -> bytes:
    return decode_base64(public_key)


def _json_of(key: StoredCrossSigningKey | None) -> bytes | None:
    return None if key is None else key.key_json
