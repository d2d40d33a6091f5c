"""The pure checks of uploaded keys: shapes, key IDs, signatures (made with pynacl and the
independent `canonicaljson`, as clients make them)."""

from __future__ import annotations

import base64
from typing import Any

import canonicaljson
import msgspec
import nacl.signing
import pytest

from dendrite_lite.e2ee.cross_signing import check_cross_signing_key
from dendrite_lite.e2ee.device_keys import (
    check_device_keys,
    check_key,
    parse_stream_token,
    split_key_id,
    validate_upload,
)
from dendrite_lite.errors import MatrixError

USER = "@alice:localhost"
DEVICE = "ALICEDEV"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def sign(obj: dict[str, Any], key: nacl.signing.SigningKey, key_id: str) -> dict[str, Any]:
    signable = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = b64(key.sign(canonicaljson.encode_canonical_json(signable)).signature)
    return {**obj, "signatures": {USER: {key_id: signature}}}


@pytest.fixture
def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def device_keys(key: nacl.signing.SigningKey, **extra: Any) -> dict[str, Any]:
    obj = {
        "user_id": USER,
        "device_id": DEVICE,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {
            f"ed25519:{DEVICE}": b64(bytes(key.verify_key)),
            f"curve25519:{DEVICE}": b64(b"c" * 32),
        },
        **extra,
    }
    return sign(obj, key, f"ed25519:{DEVICE}")


def errcode(call: Any) -> str:
    with pytest.raises(MatrixError) as caught:
        call()
    assert caught.value.status == 400
    return caught.value.errcode


def test_device_keys_are_stored_canonical_without_unsigned(key: nacl.signing.SigningKey) -> None:
    obj = device_keys(key)
    obj["unsigned"] = {"anything": 1}
    valid = check_device_keys(obj, USER, DEVICE)
    stored = msgspec.json.decode(valid.key_json)
    assert "unsigned" not in stored
    assert valid.key_json == canonicaljson.encode_canonical_json(stored)
    assert valid.ed25519 == b64(bytes(key.verify_key))
    assert valid.curve25519 == b64(b"c" * 32)


def test_curve25519_is_optional(key: nacl.signing.SigningKey) -> None:
    obj = device_keys(key)
    del obj["keys"][f"curve25519:{DEVICE}"]
    obj = sign({k: v for k, v in obj.items() if k != "signatures"}, key, f"ed25519:{DEVICE}")
    assert check_device_keys(obj, USER, DEVICE).curve25519 is None


def test_device_keys_belong_to_the_requester(key: nacl.signing.SigningKey) -> None:
    obj = device_keys(key)
    assert errcode(lambda: check_device_keys(obj, "@bob:localhost", DEVICE)) == "M_INVALID_PARAM"
    assert errcode(lambda: check_device_keys(obj, USER, "OTHER")) == "M_INVALID_PARAM"
    assert errcode(lambda: check_device_keys([], USER, DEVICE)) == "M_BAD_JSON"


def test_device_key_signature(key: nacl.signing.SigningKey) -> None:
    other = nacl.signing.SigningKey.generate()
    obj = device_keys(key)
    forged = sign({k: v for k, v in obj.items() if k != "signatures"}, other, f"ed25519:{DEVICE}")
    assert errcode(lambda: check_device_keys(forged, USER, DEVICE)) == "M_INVALID_SIGNATURE"
    obj["algorithms"] = []
    assert errcode(lambda: check_device_keys(obj, USER, DEVICE)) == "M_INVALID_SIGNATURE"
    bad_shape = {**device_keys(key), "signatures": {USER: {f"ed25519:{DEVICE}": 5}}}
    assert errcode(lambda: check_device_keys(bad_shape, USER, DEVICE)) == "M_BAD_JSON"


@pytest.mark.parametrize(
    ("key_id", "ok"),
    [
        ("signed_curve25519:AAAAAQ", True),
        ("alg:with:colons", True),
        ("nocolon", False),
        (":id", False),
        ("alg:", False),
        ("alg:has space", False),
        ("a:" + "x" * 254, False),
    ],
)
def test_split_key_id(key_id: str, ok: bool) -> None:
    if ok:
        algorithm, rest = split_key_id(key_id, "keys")
        assert f"{algorithm}:{rest}" == key_id
    else:
        assert errcode(lambda: split_key_id(key_id, "keys")) == "M_INVALID_PARAM"


def test_signed_one_time_keys(key: nacl.signing.SigningKey) -> None:
    otk = sign({"key": b64(b"k" * 32)}, key, f"ed25519:{DEVICE}")
    valid = check_key("signed_curve25519:AAAA", otk, USER, DEVICE, key.verify_key, "one_time_keys")
    assert (valid.algorithm, valid.key_id) == ("signed_curve25519", "AAAA")
    assert msgspec.json.decode(valid.content) == {"key": b64(b"k" * 32)}
    other = nacl.signing.SigningKey.generate()

    def check(value: Any, verify_key: Any = key.verify_key) -> Any:
        return check_key("signed_curve25519:A", value, USER, DEVICE, verify_key, "one_time_keys")

    assert errcode(lambda: check(otk, other.verify_key)) == "M_INVALID_SIGNATURE"
    assert errcode(lambda: check(otk, None)) == "M_INVALID_SIGNATURE"
    assert errcode(lambda: check({"key": b64(b"k" * 32)})) == "M_BAD_JSON"
    assert errcode(lambda: check("a string")) == "M_BAD_JSON"
    short = sign({"key": b64(b"k" * 8)}, key, f"ed25519:{DEVICE}")
    assert errcode(lambda: check(short)) == "M_INVALID_PARAM"
    fallback = sign({"key": b64(b"k" * 32), "fallback": 1}, key, f"ed25519:{DEVICE}")
    assert errcode(lambda: check(fallback)) == "M_BAD_JSON"


def test_other_algorithms_are_taken_as_they_come(key: nacl.signing.SigningKey) -> None:
    plain = check_key("curve25519:A", "c2VjcmV0", USER, DEVICE, None, "one_time_keys")
    assert plain.key_json == b'"c2VjcmV0"'
    unsigned_object = check_key("x.custom:A", {"k": 1}, USER, DEVICE, None, "one_time_keys")
    assert unsigned_object.key_json == b'{"k":1}'
    assert errcode(lambda: check_key("x:A", 5, USER, DEVICE, None, "k")) == "M_BAD_JSON"
    assert errcode(lambda: check_key("x:A", "", USER, DEVICE, None, "k")) == "M_BAD_JSON"
    assert errcode(lambda: check_key("x:A", {"f": 0.5}, USER, DEVICE, None, "k")) == "M_BAD_JSON"


def test_validate_upload(key: nacl.signing.SigningKey) -> None:
    otk = sign({"key": b64(b"k" * 32)}, key, f"ed25519:{DEVICE}")
    fb = sign({"key": b64(b"f" * 32), "fallback": True}, key, f"ed25519:{DEVICE}")
    upload = validate_upload(
        USER,
        DEVICE,
        device_keys(key),
        {"signed_curve25519:1": otk},
        {"signed_curve25519:2": fb},
        None,
    )
    assert upload.device_keys is not None
    assert [k.key_id for k in upload.one_time_keys] == ["1"]
    assert [k.key_id for k in upload.fallback_keys] == ["2"]
    # One-time keys alone are checked against the stored device key.
    stored = b64(bytes(key.verify_key))
    alone = validate_upload(USER, DEVICE, None, {"signed_curve25519:1": otk}, None, stored)
    assert alone.device_keys is None and len(alone.one_time_keys) == 1
    two = {"signed_curve25519:2": fb, "signed_curve25519:3": fb}
    assert errcode(lambda: validate_upload(USER, DEVICE, None, None, two, stored)) == (
        "M_INVALID_PARAM"
    )
    assert errcode(lambda: validate_upload(USER, DEVICE, None, [], None, stored)) == "M_BAD_JSON"


def master_key(key: nacl.signing.SigningKey, **extra: Any) -> dict[str, Any]:
    public = b64(bytes(key.verify_key))
    return {"user_id": USER, "usage": ["master"], "keys": {f"ed25519:{public}": public}, **extra}


def test_cross_signing_key_shape(key: nacl.signing.SigningKey) -> None:
    valid = check_cross_signing_key(master_key(key, unsigned={"x": 1}), USER, "master")
    assert valid.public_key == b64(bytes(key.verify_key))
    assert "unsigned" not in msgspec.json.decode(valid.key_json)

    def code(obj: Any, key_type: str = "master") -> str:
        return errcode(lambda: check_cross_signing_key(obj, USER, key_type))

    assert code(master_key(key), "self_signing") == "M_INVALID_PARAM"
    assert code(master_key(key, user_id="@bob:localhost")) == "M_INVALID_PARAM"
    assert code(master_key(key, usage="master")) == "M_BAD_JSON"
    assert code(master_key(key, keys={})) == "M_INVALID_PARAM"
    assert code(master_key(key, keys={"ed25519:abc": "abc"})) == "M_INVALID_PARAM"
    public = b64(bytes(key.verify_key))
    assert code(master_key(key, keys={"ed25519:other": public})) == "M_INVALID_PARAM"
    assert code(master_key(key, signatures={USER: []})) == "M_BAD_JSON"
    assert code("master") == "M_BAD_JSON"


@pytest.mark.parametrize(
    ("token", "position"), [("s0", 0), ("s42", 42), ("s42_1_40", 42), ("s7_x", 7)]
)
def test_parse_stream_token(token: str, position: int) -> None:
    assert parse_stream_token(token, "from") == position


@pytest.mark.parametrize("token", ["", "s", "42", "t42", "s-1", "s+1", "s1.0", "s" + "1" * 19])
def test_parse_bad_stream_tokens(token: str) -> None:
    assert errcode(lambda: parse_stream_token(token, "from")) == "M_INVALID_PARAM"
