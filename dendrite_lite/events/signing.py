"""Unpadded base64, ed25519 server signing keys and signed JSON.

Spec:
* https://spec.matrix.org/latest/appendices/#unpadded-base64 (and URL-safe variant)
* https://spec.matrix.org/latest/appendices/#signing-json
* https://spec.matrix.org/latest/appendices/#checking-for-a-signature
* https://spec.matrix.org/latest/appendices/#cryptographic-test-vectors

Server-to-server trust rests on ed25519 signatures over canonical JSON.  A signature lives
in ``signatures[<entity>][<algorithm>:<key version>]``; the signed bytes are the canonical
encoding of the object *without* its ``signatures`` and ``unsigned`` members, which is what
lets intermediaries add timestamps or further signatures without breaking existing ones.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import nacl.exceptions
import nacl.signing

from dendrite_lite.events.canonical_json import encode_canonical_json

__all__ = [
    "ED25519",
    "ServerSigningKey",
    "SignatureVerifyError",
    "decode_base64",
    "decode_verify_key",
    "encode_base64",
    "encode_verify_key",
    "key_id_algorithm",
    "make_key_id",
    "sign_json",
    "signature_key_ids",
    "verify_signed_json",
]

#: The only signing algorithm the spec currently defines.
ED25519: Final = "ed25519"

# Key versions: "[a-zA-Z0-9_]" per the server-server key spec; kept strict because the key
# ID is embedded in JSON keys, URLs and configuration files.
_KEY_VERSION_RE: Final = re.compile(r"[A-Za-z0-9_]+")
_STD_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_URLSAFE_TO_STD: Final = bytes.maketrans(b"-_", b"+/")


class SignatureVerifyError(ValueError):
    """A signature is missing, malformed or does not verify."""


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Unpadded base64 (standard alphabet, or the URL-safe one with ``urlsafe=True``)."""
    encoded = base64.b64encode(data).rstrip(b"=")
    if urlsafe:
        encoded = encoded.translate(_STD_TO_URLSAFE)
    return encoded.decode("ascii")


def decode_base64(data: str) -> bytes:
    """Decode base64 in either alphabet, with or without ``=`` padding.

    The spec asks implementations to accept both padded and unpadded input; several fields
    (e.g. third-party invite public keys) may also use either alphabet.  Anything else
    (stray characters, impossible lengths) raises ``ValueError``.
    """
    try:
        raw = data.encode("ascii").rstrip(b"=").translate(_URLSAFE_TO_STD)
    except UnicodeEncodeError as exc:
        raise ValueError("base64 must be ASCII") from exc
    if len(raw) % 4 == 1:
        raise ValueError("invalid base64 length")
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from exc


def make_key_id(version: str, algorithm: str = ED25519) -> str:
    """Build a key ID such as ``ed25519:a_Abc1``; rejects unusable versions."""
    if not _KEY_VERSION_RE.fullmatch(version):
        raise ValueError(f"invalid key version {version!r}: must match [A-Za-z0-9_]+")
    return f"{algorithm}:{version}"


def key_id_algorithm(key_id: str) -> str:
    """The algorithm part of a key ID (``ed25519`` for ``ed25519:abc``)."""
    return key_id.partition(":")[0]


def encode_verify_key(verify_key: nacl.signing.VerifyKey) -> str:
    """The public key as published in ``/_matrix/key/v2/server`` (unpadded base64)."""
    return encode_base64(bytes(verify_key))


def decode_verify_key(data: str) -> nacl.signing.VerifyKey:
    """Parse a base64 ed25519 public key; raises ``ValueError`` if it is not 32 bytes."""
    raw = decode_base64(data)
    if len(raw) != 32:
        raise ValueError("ed25519 public keys are 32 bytes")
    return nacl.signing.VerifyKey(raw)


@dataclass(frozen=True, slots=True)
class ServerSigningKey:
    """A server's ed25519 signing key together with its key ID.

    Stored on disk with :meth:`to_string` in the format Synapse and Dendrite use for
    ``*.signing.key`` files: ``ed25519 <version> <unpadded base64 seed>``.
    """

    key_id: str
    signing_key: nacl.signing.SigningKey

    @classmethod
    def generate(cls, version: str | None = None) -> ServerSigningKey:
        """A fresh random key; the version defaults to a random ``a_XXXX`` string."""
        if version is None:
            version = "a_" + secrets.token_hex(2)
        return cls(make_key_id(version), nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes, version: str) -> ServerSigningKey:
        """Rebuild a key from its 32-byte seed."""
        if len(seed) != 32:
            raise ValueError("ed25519 seeds are 32 bytes")
        return cls(make_key_id(version), nacl.signing.SigningKey(seed))

    @classmethod
    def from_string(cls, line: str) -> ServerSigningKey:
        """Parse ``ed25519 <version> <base64 seed>``."""
        parts = line.split()
        if len(parts) != 3 or parts[0] != ED25519:
            raise ValueError("expected 'ed25519 <version> <base64 seed>'")
        return cls.from_seed(decode_base64(parts[2]), parts[1])

    def to_string(self) -> str:
        """Serialise as ``ed25519 <version> <base64 seed>`` (contains the secret!)."""
        return f"{ED25519} {self.version} {encode_base64(bytes(self.signing_key))}"

    @property
    def version(self) -> str:
        """The part of the key ID after ``ed25519:``."""
        return self.key_id.partition(":")[2]

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        """The public half."""
        return self.signing_key.verify_key

    @property
    def public_key_base64(self) -> str:
        """The public half, encoded for publication."""
        return encode_verify_key(self.signing_key.verify_key)

    def __repr__(self) -> str:  # never leak the seed into logs
        return f"ServerSigningKey(key_id={self.key_id!r})"


def _signable_bytes(obj: Mapping[str, Any], *, strict: bool) -> bytes:
    signable = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return encode_canonical_json(signable, strict=strict)


def sign_json(
    obj: Mapping[str, Any],
    server_name: str,
    key_id: str,
    signing_key: nacl.signing.SigningKey,
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """Return a copy of ``obj`` with a signature by ``server_name``/``key_id`` added.

    ``signatures`` and ``unsigned`` are excluded from the signed bytes and carried over;
    existing signatures (from this or other entities) are kept.  The input is not mutated.
    ``strict=False`` permits legacy (room versions 1-5) values in the signed object.
    """
    signature = signing_key.sign(_signable_bytes(obj, strict=strict)).signature
    result = dict(obj)
    old_signatures = obj.get("signatures")
    signatures: dict[str, Any] = {}
    if isinstance(old_signatures, Mapping):
        signatures = {
            name: dict(sigs) if isinstance(sigs, Mapping) else sigs
            for name, sigs in old_signatures.items()
        }
    entity = signatures.get(server_name)
    if not isinstance(entity, dict):
        entity = signatures[server_name] = {}
    entity[key_id] = encode_base64(signature)
    result["signatures"] = signatures
    return result


def signature_key_ids(obj: Mapping[str, Any], server_name: str) -> list[str]:
    """The key IDs for which ``obj`` carries a signature by ``server_name``."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        return []
    entity = signatures.get(server_name)
    if not isinstance(entity, Mapping):
        return []
    return [k for k in entity if isinstance(k, str)]


def verify_signed_json(
    obj: Mapping[str, Any],
    server_name: str,
    key_id: str,
    verify_key: nacl.signing.VerifyKey,
    *,
    strict: bool = True,
) -> None:
    """Check the signature by ``server_name`` with ``key_id`` on ``obj``.

    Implements "Checking for a Signature"; the caller has already looked the verify key up.
    Raises :class:`SignatureVerifyError` (with the reason) if the signature is absent,
    not valid base64, of an unknown algorithm, or does not match.
    """
    if key_id_algorithm(key_id) != ED25519:
        raise SignatureVerifyError(f"unsupported signing algorithm in key ID {key_id!r}")
    signatures = obj.get("signatures")
    entity = signatures.get(server_name) if isinstance(signatures, Mapping) else None
    if not isinstance(entity, Mapping):
        raise SignatureVerifyError(f"no signatures from {server_name}")
    encoded = entity.get(key_id)
    if not isinstance(encoded, str):
        raise SignatureVerifyError(f"no signature from {server_name} with key {key_id}")
    try:
        signature = decode_base64(encoded)
    except ValueError as exc:
        raise SignatureVerifyError(f"signature {server_name}/{key_id} is not base64") from exc
    signed_bytes = _signable_bytes(obj, strict=strict)
    try:
        verify_key.verify(signed_bytes, signature)
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise SignatureVerifyError(f"bad signature from {server_name} with key {key_id}") from exc
