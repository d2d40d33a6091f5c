"""Base64 helpers, server signing keys and signed JSON (appendix test vectors)."""

from __future__ import annotations

import nacl.signing
import pytest

from dendrite_lite.events.canonical_json import CanonicalJsonError
from dendrite_lite.events.signing import (
    ServerSigningKey,
    SignatureVerifyError,
    decode_base64,
    decode_verify_key,
    encode_base64,
    encode_verify_key,
    key_id_algorithm,
    make_key_id,
    sign_json,
    signature_key_ids,
    verify_signed_json,
)

SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"


@pytest.fixture
def spec_key() -> ServerSigningKey:
    return ServerSigningKey.from_seed(decode_base64(SPEC_SEED), "1")


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
    ],
)
def test_unpadded_base64_spec_examples(raw: bytes, encoded: str) -> None:
    assert encode_base64(raw) == encoded
    assert decode_base64(encoded) == raw


def test_urlsafe_base64() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF])
    assert encode_base64(raw) == "+/+/"
    assert encode_base64(raw, urlsafe=True) == "-_-_"
    assert decode_base64("-_-_") == raw


def test_decode_accepts_padding() -> None:
    assert decode_base64("Zg==") == b"f"
    assert decode_base64("Zm8=") == b"fo"


@pytest.mark.parametrize("bad", ["Z", "Zm9v!", "Zm 9v", "Zé"])
def test_decode_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_base64(bad)


def test_spec_signing_vector_empty_object(spec_key: ServerSigningKey) -> None:
    signed = sign_json({}, "domain", spec_key.key_id, spec_key.signing_key)
    assert signed == {
        "signatures": {
            "domain": {
                "ed25519:1": (
                    "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTd"
                    "GYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                ),
            }
        }
    }


def test_spec_signing_vector_with_data(spec_key: ServerSigningKey) -> None:
    signed = sign_json({"one": 1, "two": "Two"}, "domain", "ed25519:1", spec_key.signing_key)
    assert signed == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": (
                    "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL5"
                    "3+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
                ),
            }
        },
        "two": "Two",
    }
    verify_signed_json(signed, "domain", "ed25519:1", spec_key.verify_key)


def test_sign_ignores_unsigned_and_keeps_other_signatures(spec_key: ServerSigningKey) -> None:
    other = ServerSigningKey.generate("other")
    original = {
        "one": 1,
        "two": "Two",
        "unsigned": {"age_ts": 922834800000},
        "signatures": {"notary.example": {"ed25519:n": "AAAA"}},
    }
    signed = sign_json(original, "domain", "ed25519:1", spec_key.signing_key)
    # same signature as without unsigned/other signatures
    assert signed["signatures"]["domain"]["ed25519:1"].startswith("KqmLSbO39/Bzb0")
    assert signed["signatures"]["notary.example"] == {"ed25519:n": "AAAA"}
    assert signed["unsigned"] == {"age_ts": 922834800000}
    assert "domain" not in original["signatures"]  # input not mutated
    twice = sign_json(signed, "domain", other.key_id, other.signing_key)
    assert set(twice["signatures"]["domain"]) == {"ed25519:1", other.key_id}
    verify_signed_json(twice, "domain", "ed25519:1", spec_key.verify_key)
    verify_signed_json(twice, "domain", other.key_id, other.verify_key)
    assert sorted(signature_key_ids(twice, "domain")) == sorted(["ed25519:1", other.key_id])
    assert signature_key_ids(twice, "nobody") == []
    assert signature_key_ids({}, "domain") == []


def test_verify_failures(spec_key: ServerSigningKey) -> None:
    signed = sign_json({"a": 1}, "domain", "ed25519:1", spec_key.signing_key)
    with pytest.raises(SignatureVerifyError, match="bad signature"):
        verify_signed_json({**signed, "a": 2}, "domain", "ed25519:1", spec_key.verify_key)
    with pytest.raises(SignatureVerifyError, match="no signatures from"):
        verify_signed_json(signed, "elsewhere", "ed25519:1", spec_key.verify_key)
    with pytest.raises(SignatureVerifyError, match="no signature from domain with key"):
        verify_signed_json(signed, "domain", "ed25519:2", spec_key.verify_key)
    with pytest.raises(SignatureVerifyError, match="unsupported"):
        verify_signed_json(signed, "domain", "rsa:1", spec_key.verify_key)
    garbled = {"a": 1, "signatures": {"domain": {"ed25519:1": "!!!"}}}
    with pytest.raises(SignatureVerifyError, match="not base64"):
        verify_signed_json(garbled, "domain", "ed25519:1", spec_key.verify_key)
    short = {"a": 1, "signatures": {"domain": {"ed25519:1": "AAAA"}}}
    with pytest.raises(SignatureVerifyError):
        verify_signed_json(short, "domain", "ed25519:1", spec_key.verify_key)
    wrong_key = ServerSigningKey.generate().verify_key
    with pytest.raises(SignatureVerifyError):
        verify_signed_json(signed, "domain", "ed25519:1", wrong_key)


def test_strictness_applies_to_signed_bytes(spec_key: ServerSigningKey) -> None:
    with pytest.raises(CanonicalJsonError):
        sign_json({"pl": 50.5}, "domain", "ed25519:1", spec_key.signing_key)
    signed = sign_json({"pl": 50.5}, "domain", "ed25519:1", spec_key.signing_key, strict=False)
    verify_signed_json(signed, "domain", "ed25519:1", spec_key.verify_key, strict=False)


def test_key_ids() -> None:
    assert make_key_id("a_Abc1") == "ed25519:a_Abc1"
    assert key_id_algorithm("ed25519:x") == "ed25519"
    for bad in ("", "a:b", "a b", "é"):
        with pytest.raises(ValueError):
            make_key_id(bad)


def test_server_signing_key_roundtrip(spec_key: ServerSigningKey) -> None:
    line = spec_key.to_string()
    # The spec's seed has non-zero padding bits, so the canonical re-encoding ends "...A0".
    assert line == f"ed25519 1 {SPEC_SEED[:-1]}0"
    again = ServerSigningKey.from_string(line)
    assert again.key_id == "ed25519:1"
    assert again.version == "1"
    assert bytes(again.signing_key) == bytes(spec_key.signing_key)
    assert SPEC_SEED[:-1] not in repr(again)
    assert decode_verify_key(again.public_key_base64) == again.verify_key
    assert encode_verify_key(again.verify_key) == again.public_key_base64
    generated = ServerSigningKey.generate()
    assert generated.key_id.startswith("ed25519:a_")
    for bad in ("ed25519 1", "rsa 1 AAAA", f"ed25519 1 {SPEC_SEED[:-4]}"):
        with pytest.raises(ValueError):
            ServerSigningKey.from_string(bad)
    with pytest.raises(ValueError):
        decode_verify_key("AAAA")
    assert isinstance(decode_verify_key(spec_key.public_key_base64), nacl.signing.VerifyKey)
