"""An end-to-end encryption client over raw httpx, signing with real ed25519 keys (pynacl)
exactly as clients do: over the canonical JSON (the independent `canonicaljson`
package) of the object without `signatures` and `unsigned`.

Helpers only (no tests): the test_keys*.py modules use them.
"""

from __future__ import annotations

import base64
import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

import canonicaljson
import httpx
import nacl.public
import nacl.signing

from tests.e2e.matrix import CS, User, expect, login, register_user

OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"
SIGNED_CURVE = "signed_curve25519"

_key_ids = itertools.count(1)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def public_b64(key: nacl.signing.SigningKey) -> str:
    return b64(bytes(key.verify_key))


def curve_public() -> str:
    return b64(bytes(nacl.public.PrivateKey.generate().public_key))


def sign(obj: dict[str, Any], user_id: str, key_id: str, key: nacl.signing.SigningKey) -> dict:
    """A copy of `obj` with a signature by `user_id`'s `key_id` added."""
    signable = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = key.sign(canonicaljson.encode_canonical_json(signable)).signature
    signed = copy.deepcopy(obj)
    signed.setdefault("signatures", {}).setdefault(user_id, {})[key_id] = b64(signature)
    return signed


def new_key_id() -> str:
    return b64(next(_key_ids).to_bytes(4, "big") + b"\x00\x00")


@dataclass
class CrossSigningKeys:
    master: nacl.signing.SigningKey = field(default_factory=nacl.signing.SigningKey.generate)
    self_signing: nacl.signing.SigningKey = field(default_factory=nacl.signing.SigningKey.generate)
    user_signing: nacl.signing.SigningKey = field(default_factory=nacl.signing.SigningKey.generate)

    def key_id(self, which: str) -> str:
        return f"ed25519:{public_b64(getattr(self, which))}"

    def public(self, which: str) -> str:
        return public_b64(getattr(self, which))

    def key(self, user_id: str, which: str, *, signed_by_master: bool = True) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "user_id": user_id,
            "usage": [which],
            "keys": {self.key_id(which): self.public(which)},
        }
        if which != "master" and signed_by_master:
            obj = sign(obj, user_id, self.key_id("master"), self.master)
        return obj

    def body(self, user_id: str, *which: str) -> dict[str, Any]:
        which = which or ("master", "self_signing", "user_signing")
        return {f"{w}_key": self.key(user_id, w) for w in which}


@dataclass
class Device:
    """One logged-in device with its own ed25519 and curve25519 identity keys."""

    http: httpx.Client
    user: User
    signing_key: nacl.signing.SigningKey = field(default_factory=nacl.signing.SigningKey.generate)
    curve25519: str = field(default_factory=curve_public)
    cross: CrossSigningKeys = field(default_factory=CrossSigningKeys)

    @property
    def user_id(self) -> str:
        return self.user.user_id

    @property
    def device_id(self) -> str:
        return self.user.device_id

    @property
    def ed25519(self) -> str:
        return public_b64(self.signing_key)

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.device_id}"

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign(obj, self.user_id, self.key_id, self.signing_key)

    def device_keys(self, **overrides: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": [OLM, MEGOLM],
            "keys": {
                f"ed25519:{self.device_id}": self.ed25519,
                f"curve25519:{self.device_id}": self.curve25519,
            },
        }
        obj.update(overrides)
        return self.sign(obj)

    def one_time_key(self, *, fallback: bool = False) -> tuple[str, dict[str, Any]]:
        obj: dict[str, Any] = {"key": curve_public()}
        if fallback:
            obj["fallback"] = True
        return f"{SIGNED_CURVE}:{new_key_id()}", self.sign(obj)

    def one_time_keys(self, count: int) -> dict[str, Any]:
        return dict(self.one_time_key() for _ in range(count))

    def fallback_key(self) -> dict[str, Any]:
        return dict([self.one_time_key(fallback=True)])

    # -- requests ----------------------------------------------------------------------

    def post(self, path: str, body: Any, status: int = 200, errcode: str | None = None) -> Any:
        return expect(
            self.http.post(f"{CS}{path}", headers=self.user.headers, json=body), status, errcode
        )

    def upload(self, status: int = 200, errcode: str | None = None, **body: Any) -> Any:
        return self.post("/keys/upload", body, status, errcode)

    def query(self, *user_ids: str) -> Any:
        """/keys/query for every device of the users."""
        return self.post("/keys/query", {"device_keys": {u: [] for u in user_ids}})

    def query_body(self, body: Any, status: int = 200, errcode: str | None = None) -> Any:
        return self.post("/keys/query", body, status, errcode)

    def claim(self, wanted: dict[str, dict[str, str]], status: int = 200) -> Any:
        return self.post("/keys/claim", {"one_time_keys": wanted}, status)

    def changes(self, from_: str, to: str | None = None, status: int = 200) -> Any:
        params = {"from": from_} if to is None else {"from": from_, "to": to}
        response = self.http.get(f"{CS}/keys/changes", headers=self.user.headers, params=params)
        return expect(response, status)

    def upload_cross_signing(
        self, body: dict[str, Any], status: int = 200, errcode: str | None = None
    ) -> Any:
        return self.post("/keys/device_signing/upload", body, status, errcode)

    def upload_signatures(self, body: dict[str, Any], status: int = 200) -> Any:
        return self.post("/keys/signatures/upload", body, status)

    def sync_token(self) -> str:
        body = expect(
            self.http.get(f"{CS}/sync", headers=self.user.headers, params={"timeout": "0"}), 200
        )
        token: str = body["next_batch"]
        return token

    def other_device(self) -> Device:
        """The same user logged in on a new device (with the same cross-signing keys)."""
        body = login(self.http, self.user_id, self.user.password)
        token, device_id = body["access_token"], body["device_id"]
        user = User(self.user.localpart, self.user.password, token, device_id)
        return Device(self.http, user, cross=self.cross)

    def with_keys(self, otks: int = 0) -> Device:
        """Upload device keys (and `otks` one-time keys); returns self."""
        body: dict[str, Any] = {"device_keys": self.device_keys()}
        if otks:
            body["one_time_keys"] = self.one_time_keys(otks)
        self.upload(**body)
        return self


def new_device(http: httpx.Client, prefix: str = "keys") -> Device:
    return Device(http, register_user(http, prefix))
