"""/keys/upload, /keys/query and /keys/claim against the real server, with real ed25519
signatures made the way clients make them.

https://spec.matrix.org/latest/client-server-api/#key-management-api
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import quote

import canonicaljson
import httpx
import nacl.signing
import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, expect, login, logout, password_auth
from tests.e2e.test_keys_client import (
    SIGNED_CURVE,
    Device,
    b64,
    curve_public,
    new_device,
    new_key_id,
    sign,
)

BAD_SIGNATURE = "M_INVALID_SIGNATURE"


@pytest.fixture
def alice(http: httpx.Client) -> Device:
    return new_device(http, "alice")


@pytest.fixture
def bob(http: httpx.Client) -> Device:
    return new_device(http, "bob")


def served_devices(viewer: Device, owner: Device) -> dict[str, Any]:
    devices: dict[str, Any] = viewer.query(owner.user_id)["device_keys"].get(owner.user_id, {})
    return devices


def otk_count(device: Device) -> int:
    count: int = device.upload()["one_time_key_counts"].get(SIGNED_CURVE, 0)
    return count


def unb64(data: str) -> bytes:
    return base64.b64decode(data + "=" * (-len(data) % 4))


def verify_signed(obj: dict[str, Any], user_id: str, key_id: str, public: str) -> None:
    """Check a signature as a client would (raises if it does not verify)."""
    signable = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = unb64(obj["signatures"][user_id][key_id])
    nacl.signing.VerifyKey(unb64(public)).verify(
        canonicaljson.encode_canonical_json(signable), signature
    )


# -- /keys/upload: device keys ---------------------------------------------------------------


def test_upload_and_query_device_keys(alice: Device, bob: Device) -> None:
    keys = alice.device_keys()
    answer = alice.upload(device_keys=keys, one_time_keys=alice.one_time_keys(5))
    assert answer == {"one_time_key_counts": {SIGNED_CURVE: 5}}
    result = bob.query(alice.user_id)
    assert set(result) >= {"device_keys", "failures", "master_keys", "self_signing_keys"}
    assert result["failures"] == {}
    served = result["device_keys"][alice.user_id][alice.device_id]
    served.pop("unsigned", None)
    assert served == keys
    verify_signed(served, alice.user_id, alice.key_id, alice.ed25519)


def test_empty_upload_answers_counts(alice: Device) -> None:
    assert alice.upload() == {"one_time_key_counts": {SIGNED_CURVE: 0}}
    assert alice.upload(device_keys=None, one_time_keys=None) == {
        "one_time_key_counts": {SIGNED_CURVE: 0}
    }


def test_display_name_is_served_unsigned(alice: Device, bob: Device) -> None:
    alice.with_keys()
    path = f"{CS}/devices/{alice.device_id}"
    expect(alice.http.put(path, headers=alice.user.headers, json={"display_name": "Phone"}), 200)
    served = served_devices(bob, alice)[alice.device_id]
    assert served["unsigned"] == {"device_display_name": "Phone"}
    verify_signed(served, alice.user_id, alice.key_id, alice.ed25519)


def test_unsigned_uploaded_by_client_is_not_served(alice: Device, bob: Device) -> None:
    keys = alice.device_keys()
    keys["unsigned"] = {"device_display_name": "forged", "x": 1}
    alice.upload(device_keys=keys)
    assert "unsigned" not in served_devices(bob, alice)[alice.device_id]


def test_keys_for_another_users_device_are_refused(alice: Device, bob: Device) -> None:
    bob.with_keys()
    forged = bob.device_keys()  # bob's keys, signed by bob: alice may not publish them
    alice.upload(device_keys=forged, status=400, errcode="M_INVALID_PARAM")
    mine = alice.device_keys(device_id="OTHERDEVICE")
    alice.upload(device_keys=alice.sign(mine), status=400, errcode="M_INVALID_PARAM")
    other_user = alice.device_keys(user_id=bob.user_id)
    alice.upload(device_keys=other_user, status=400, errcode="M_INVALID_PARAM")
    assert served_devices(bob, alice) == {}
    assert list(served_devices(alice, bob)) == [bob.device_id]


def test_unsigned_device_keys_are_refused(alice: Device, bob: Device) -> None:
    keys = alice.device_keys()
    del keys["signatures"]
    alice.upload(device_keys=keys, status=400, errcode="M_BAD_JSON")
    keys["signatures"] = {}
    alice.upload(device_keys=keys, status=400, errcode=BAD_SIGNATURE)
    keys["signatures"] = {alice.user_id: {}}
    alice.upload(device_keys=keys, status=400, errcode=BAD_SIGNATURE)
    assert served_devices(bob, alice) == {}


def test_wrongly_signed_device_keys_are_refused(alice: Device, bob: Device) -> None:
    stranger = nacl.signing.SigningKey.generate()
    keys = alice.device_keys()
    del keys["signatures"]
    # Signed by another key than the ed25519 key it publishes.
    forged = sign(keys, alice.user_id, alice.key_id, stranger)
    alice.upload(device_keys=forged, status=400, errcode=BAD_SIGNATURE)
    # Signed, then changed.
    tampered = alice.device_keys()
    tampered["algorithms"] = ["m.megolm.v1.aes-sha2"]
    alice.upload(device_keys=tampered, status=400, errcode=BAD_SIGNATURE)
    # A signature that is not base64, or under another key ID.
    garbled = alice.device_keys()
    garbled["signatures"][alice.user_id][alice.key_id] = "!!not base64!!"
    alice.upload(device_keys=garbled, status=400, errcode=BAD_SIGNATURE)
    elsewhere = alice.device_keys()
    sig = elsewhere["signatures"][alice.user_id].pop(alice.key_id)
    elsewhere["signatures"][alice.user_id]["ed25519:SOMEONE"] = sig
    alice.upload(device_keys=elsewhere, status=400, errcode=BAD_SIGNATURE)
    assert served_devices(bob, alice) == {}


def _set_key(name: str, value: Any) -> Any:
    return lambda keys, device: keys["keys"].update({name.format(device=device): value})


def _set(field: str, value: Any) -> Any:
    return lambda keys, device: keys.update({field: value})


def _drop_key(name: str) -> Any:
    return lambda keys, device: keys["keys"].pop(name.format(device=device))


def _drop(field: str) -> Any:
    return lambda keys, device: keys.pop(field)


def _copy_ed25519_to(name: str) -> Any:
    return lambda keys, device: keys["keys"].update({name: keys["keys"][f"ed25519:{device}"]})


MALFORMED_DEVICE_KEYS = {
    "no ed25519 key": (_drop_key("ed25519:{device}"), "M_INVALID_PARAM"),
    "key of another device": (_copy_ed25519_to("ed25519:WRONG"), "M_INVALID_PARAM"),
    "key ID without colon": (_set_key("nocolon", "abc"), "M_INVALID_PARAM"),
    "key ID without algorithm": (_set_key(":{device}", "abc"), "M_INVALID_PARAM"),
    "ed25519 not base64": (_set_key("ed25519:{device}", "not-a-key"), "M_INVALID_PARAM"),
    "ed25519 too short": (_set_key("ed25519:{device}", b64(b"short")), "M_INVALID_PARAM"),
    "curve25519 too short": (_set_key("curve25519:{device}", b64(b"x" * 31)), "M_INVALID_PARAM"),
    "key not a string": (_set_key("curve25519:{device}", 5), "M_BAD_JSON"),
    "no keys": (_set("keys", {}), "M_BAD_JSON"),
    "keys a list": (_set("keys", []), "M_BAD_JSON"),
    "algorithms a string": (_set("algorithms", "m.megolm.v1.aes-sha2"), "M_BAD_JSON"),
    "algorithms not strings": (_set("algorithms", [1]), "M_BAD_JSON"),
    "no algorithms": (_drop("algorithms"), "M_BAD_JSON"),
    "no user_id": (_drop("user_id"), "M_BAD_JSON"),
    "device_id a number": (_set("device_id", 7), "M_BAD_JSON"),
    "a float": (_set("extra", 1.5), "M_BAD_JSON"),
    "a huge integer": (_set("extra", 2**60), "M_BAD_JSON"),
}


@pytest.mark.parametrize(
    ("change", "errcode"), MALFORMED_DEVICE_KEYS.values(), ids=MALFORMED_DEVICE_KEYS.keys()
)
def test_malformed_device_keys_are_refused(
    alice: Device, bob: Device, change: Any, errcode: str
) -> None:
    keys = alice.device_keys()
    del keys["signatures"]
    change(keys, alice.device_id)
    try:
        signed = alice.sign(keys)
    except Exception:  # canonicaljson refuses floats/big ints: send it unsigned then
        signed = {**keys, "signatures": {alice.user_id: {alice.key_id: "AAAA"}}}
    alice.upload(device_keys=signed, status=400, errcode=errcode)
    assert served_devices(bob, alice) == {}


@pytest.mark.parametrize("body", [[], "keys", 5, {"device_keys": []}, {"device_keys": "x"}])
def test_upload_body_must_be_objects(alice: Device, body: Any) -> None:
    expect(
        alice.http.post(f"{CS}/keys/upload", headers=alice.user.headers, json=body),
        400,
        "M_BAD_JSON",
    )


def test_identity_keys_of_a_device_never_change(alice: Device, bob: Device) -> None:
    alice.with_keys()
    before = served_devices(bob, alice)
    # The same keys again: fine, nothing changes.
    alice.upload(device_keys=alice.device_keys())
    assert served_devices(bob, alice) == before
    # New identity keys for the same device: refused.
    impostor = Device(alice.http, alice.user)
    impostor.upload(device_keys=impostor.device_keys(), status=400, errcode="M_INVALID_PARAM")
    curve_only = Device(alice.http, alice.user, signing_key=alice.signing_key)
    curve_only.upload(device_keys=curve_only.device_keys(), status=400, errcode="M_INVALID_PARAM")
    assert served_devices(bob, alice) == before
    # The same identity with other algorithms: a legitimate update.
    alice.upload(device_keys=alice.device_keys(algorithms=["m.megolm.v1.aes-sha2"]))
    served = served_devices(bob, alice)[alice.device_id]
    assert served["algorithms"] == ["m.megolm.v1.aes-sha2"]


# -- /keys/upload: one-time and fallback keys ------------------------------------------------


def test_one_time_keys_must_be_signed_by_the_device(alice: Device) -> None:
    alice.with_keys()
    key_id, key = alice.one_time_key()
    unsigned = {k: v for k, v in key.items() if k != "signatures"}
    alice.upload(one_time_keys={key_id: unsigned}, status=400, errcode="M_BAD_JSON")
    alice.upload(
        one_time_keys={key_id: {**unsigned, "signatures": {}}}, status=400, errcode=BAD_SIGNATURE
    )
    stranger = sign(unsigned, alice.user_id, alice.key_id, nacl.signing.SigningKey.generate())
    alice.upload(one_time_keys={key_id: stranger}, status=400, errcode=BAD_SIGNATURE)
    tampered = {**key, "key": curve_public()}
    alice.upload(one_time_keys={key_id: tampered}, status=400, errcode=BAD_SIGNATURE)
    assert otk_count(alice) == 0
    alice.upload(one_time_keys={key_id: key})
    assert otk_count(alice) == 1


def test_signed_one_time_keys_need_device_keys_first(alice: Device) -> None:
    alice.upload(one_time_keys=alice.one_time_keys(2), status=400, errcode=BAD_SIGNATURE)
    assert otk_count(alice) == 0
    # With the device keys in the same upload, they are checked against those.
    alice.upload(device_keys=alice.device_keys(), one_time_keys=alice.one_time_keys(2))
    assert otk_count(alice) == 2


def test_unsigned_algorithms_may_be_plain_strings(alice: Device, bob: Device) -> None:
    alice.with_keys()
    answer = alice.upload(one_time_keys={f"curve25519:{new_key_id()}": curve_public()})
    assert answer["one_time_key_counts"] == {"curve25519": 1, SIGNED_CURVE: 0}
    claimed = bob.claim({alice.user_id: {alice.device_id: "curve25519"}})
    [(key_id, key)] = claimed["one_time_keys"][alice.user_id][alice.device_id].items()
    assert key_id.startswith("curve25519:") and isinstance(key, str)


@pytest.mark.parametrize(
    "key_id",
    ["signed_curve25519", ":AAAA", "signed_curve25519:", "signed curve:AAAA", "a:" + "x" * 300],
)
def test_malformed_one_time_key_ids_are_refused(alice: Device, key_id: str) -> None:
    alice.with_keys()
    _, key = alice.one_time_key()
    alice.upload(one_time_keys={key_id: key}, status=400, errcode="M_INVALID_PARAM")
    alice.upload(fallback_keys={key_id: key}, status=400, errcode="M_INVALID_PARAM")
    assert otk_count(alice) == 0


@pytest.mark.parametrize("value", [5, None, [], "", True, {"key": 5, "signatures": {}}])
def test_malformed_one_time_keys_are_refused(alice: Device, value: Any) -> None:
    alice.with_keys()
    key_id = f"{SIGNED_CURVE}:{new_key_id()}"
    response = alice.http.post(
        f"{CS}/keys/upload",
        headers=alice.user.headers,
        json={"one_time_keys": {key_id: value}},
    )
    assert expect(response, 400)["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM")
    assert otk_count(alice) == 0


def test_reupload_of_a_key_id(alice: Device) -> None:
    alice.with_keys()
    key_id, key = alice.one_time_key()
    alice.upload(one_time_keys={key_id: key})
    # The same key again (a retried request): accepted, counted once.
    assert alice.upload(one_time_keys={key_id: key})["one_time_key_counts"][SIGNED_CURVE] == 1
    # Other content under the same key ID: refused, and nothing of that upload is stored.
    other_id, other = alice.one_time_key()
    _, changed = alice.one_time_key()
    alice.upload(
        one_time_keys={other_id: other, key_id: changed}, status=400, errcode="M_INVALID_PARAM"
    )
    assert otk_count(alice) == 1


def test_a_rejected_upload_stores_nothing(alice: Device, bob: Device) -> None:
    keys = alice.one_time_keys(3)
    first = next(iter(keys))
    keys[first] = {**keys[first], "key": curve_public()}  # breaks its signature
    alice.upload(
        device_keys=alice.device_keys(),
        one_time_keys=keys,
        fallback_keys=alice.fallback_key(),
        status=400,
        errcode=BAD_SIGNATURE,
    )
    assert served_devices(bob, alice) == {}
    claimed = bob.claim({alice.user_id: {alice.device_id: SIGNED_CURVE}})
    assert claimed["one_time_keys"] == {}


def test_oversized_upload_is_refused(alice: Device) -> None:
    alice.with_keys()
    key_id, key = alice.one_time_key()
    huge = {**key, "padding": "x" * (1024 * 1024)}
    response = alice.http.post(
        f"{CS}/keys/upload", headers=alice.user.headers, json={"one_time_keys": {key_id: huge}}
    )
    expect(response, 413, "M_TOO_LARGE")
    many = alice.one_time_keys(2)
    body = json.dumps({"one_time_keys": {**many, "pad": "y" * (1024 * 1024)}})
    response = alice.http.post(
        f"{CS}/keys/upload",
        headers={**alice.user.headers, "Content-Type": "application/json"},
        content=body,
    )
    expect(response, 413, "M_TOO_LARGE")
    assert otk_count(alice) == 0


def test_a_large_upload_is_checked_and_stored(alice: Device) -> None:
    # Enough keys to be checked off the event loop; one bad signature still sinks it.
    keys = alice.one_time_keys(200)
    last = list(keys)[-1]
    bad = dict(keys)
    bad[last] = {**keys[last], "key": curve_public()}
    alice.upload(device_keys=alice.device_keys(), one_time_keys=bad, status=400)
    answer = alice.upload(device_keys=alice.device_keys(), one_time_keys=keys)
    assert answer["one_time_key_counts"][SIGNED_CURVE] == 200


# -- /keys/claim -------------------------------------------------------------------------------


def test_claim_hands_out_each_key_once_oldest_first(alice: Device, bob: Device) -> None:
    alice.with_keys()
    first = alice.one_time_keys(3)
    alice.upload(one_time_keys=first)
    second = alice.one_time_keys(3)
    alice.upload(one_time_keys=second)
    seen: list[str] = []
    for _ in range(6):
        claimed = bob.claim({alice.user_id: {alice.device_id: SIGNED_CURVE}})
        assert claimed["failures"] == {}
        [(key_id, key)] = claimed["one_time_keys"][alice.user_id][alice.device_id].items()
        assert key == {**first, **second}[key_id]
        verify_signed(key, alice.user_id, alice.key_id, alice.ed25519)
        seen.append(key_id)
    assert len(set(seen)) == 6
    assert set(seen[:3]) == set(first) and set(seen[3:]) == set(second)
    assert otk_count(alice) == 0
    empty = bob.claim({alice.user_id: {alice.device_id: SIGNED_CURVE}})
    assert empty == {"one_time_keys": {}, "failures": {}}


def test_claim_falls_back_to_the_fallback_key(alice: Device, bob: Device) -> None:
    alice.with_keys()
    fallback = alice.fallback_key()
    alice.upload(one_time_keys=alice.one_time_keys(1), fallback_keys=fallback)
    want = {alice.user_id: {alice.device_id: SIGNED_CURVE}}
    first = bob.claim(want)["one_time_keys"][alice.user_id][alice.device_id]
    assert set(first) != set(fallback)  # a one-time key first
    for _ in range(3):  # then the fallback key, again and again
        assert bob.claim(want)["one_time_keys"][alice.user_id][alice.device_id] == fallback
    # The same fallback key again is not a new one; a new one replaces it.
    alice.upload(fallback_keys=fallback)
    newer = alice.fallback_key()
    alice.upload(fallback_keys=newer)
    assert bob.claim(want)["one_time_keys"][alice.user_id][alice.device_id] == newer
    # New one-time keys are claimed before the fallback key again.
    alice.upload(one_time_keys=alice.one_time_keys(1))
    assert bob.claim(want)["one_time_keys"][alice.user_id][alice.device_id] != newer


def test_fallback_key_rules(alice: Device) -> None:
    alice.with_keys()
    two = {**alice.fallback_key(), **alice.fallback_key()}
    alice.upload(fallback_keys=two, status=400, errcode="M_INVALID_PARAM")
    key_id, key = next(iter(alice.fallback_key().items()))
    alice.upload(fallback_keys={key_id: key})
    _, other = alice.one_time_key(fallback=True)
    alice.upload(fallback_keys={key_id: other}, status=400, errcode="M_INVALID_PARAM")
    unsigned = {k: v for k, v in key.items() if k != "signatures"}
    alice.upload(fallback_keys={key_id: {**unsigned, "signatures": {}}}, status=400)
    not_bool = alice.sign({"key": curve_public(), "fallback": "yes"})
    alice.upload(fallback_keys={f"{SIGNED_CURVE}:{new_key_id()}": not_bool}, status=400)


def test_unstable_fallback_key_name_is_accepted(alice: Device, bob: Device) -> None:
    alice.with_keys()
    fallback = alice.fallback_key()
    alice.upload(**{"org.matrix.msc2732.fallback_keys": fallback})
    claimed = bob.claim({alice.user_id: {alice.device_id: SIGNED_CURVE}})
    assert claimed["one_time_keys"][alice.user_id][alice.device_id] == fallback


def test_claim_for_unknown_users_devices_and_algorithms(alice: Device, bob: Device) -> None:
    alice.with_keys(otks=2)
    claimed = bob.claim(
        {
            alice.user_id: {alice.device_id: "unknown.algorithm", "NOSUCHDEVICE": SIGNED_CURVE},
            "@nobody-here:localhost": {"DEVICE": SIGNED_CURVE},
            "@someone:remote.example": {"DEVICE": SIGNED_CURVE},
        }
    )
    assert claimed["one_time_keys"] == {}
    assert set(claimed["failures"]) == {"remote.example"}
    assert otk_count(alice) == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"one_time_keys": []},
        {"one_time_keys": {"@a:localhost": []}},
        {"one_time_keys": {"@a:localhost": {"DEV": 5}}},
        {"one_time_keys": {}, "timeout": "10"},
    ],
)
def test_claim_bad_bodies(bob: Device, body: Any) -> None:
    bob.post("/keys/claim", body, 400, "M_BAD_JSON")


@pytest.mark.parametrize("user_id", ["alice", "@", "@alice", "@:localhost"])
def test_claim_and_query_refuse_invalid_user_ids(bob: Device, user_id: str) -> None:
    claim = {"one_time_keys": {user_id: {"D": SIGNED_CURVE}}}
    bob.post("/keys/claim", claim, 400, "M_INVALID_PARAM")
    bob.post("/keys/query", {"device_keys": {user_id: []}}, 400, "M_INVALID_PARAM")


def test_claim_bad_algorithm(alice: Device, bob: Device) -> None:
    alice.with_keys(otks=1)
    bob.post("/keys/claim", {"one_time_keys": {alice.user_id: {alice.device_id: ""}}}, 400)
    assert otk_count(alice) == 1


async def test_concurrent_claims_never_share_a_key(server: Server, http: httpx.Client) -> None:
    owner = new_device(http, "claimed").with_keys()
    keys = owner.one_time_keys(10)
    fallback = owner.fallback_key()
    owner.upload(one_time_keys=keys, fallback_keys=fallback)
    claimers = [new_device(http, "claimer") for _ in range(4)]
    want = {"one_time_keys": {owner.user_id: {owner.device_id: SIGNED_CURVE}}}
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:

        async def claim(n: int) -> dict[str, Any]:
            headers = claimers[n % len(claimers)].user.headers
            response = await client.post(f"{CS}/keys/claim", headers=headers, json=want)
            body: dict[str, Any] = expect(response, 200)
            got: dict[str, Any] = body["one_time_keys"][owner.user_id][owner.device_id]
            return got

        results = await asyncio.gather(*(claim(n) for n in range(20)))
    handed_out = [key_id for result in results for key_id in result]
    one_time = [key_id for key_id in handed_out if key_id in keys]
    assert sorted(one_time) == sorted(keys)  # each one-time key exactly once
    assert [k for k in handed_out if k not in keys] == list(fallback) * 10
    assert otk_count(owner) == 0


# -- /keys/query -------------------------------------------------------------------------------


def test_query_all_or_some_devices(alice: Device, bob: Device) -> None:
    alice.with_keys()
    phone = alice.other_device().with_keys()
    laptop_without_keys = alice.other_device()
    everything = served_devices(bob, alice)
    assert set(everything) == {alice.device_id, phone.device_id}
    some = bob.query_body({"device_keys": {alice.user_id: [phone.device_id, "NOSUCH"]}})
    assert set(some["device_keys"][alice.user_id]) == {phone.device_id}
    keyless = bob.query_body({"device_keys": {alice.user_id: [laptop_without_keys.device_id]}})
    assert keyless["device_keys"] == {alice.user_id: {}}


def test_query_unknown_local_and_remote_users(alice: Device, bob: Device) -> None:
    result = bob.query_body(
        {
            "device_keys": {
                alice.user_id: [],
                "@nobody-at-all:localhost": [],
                "@someone:remote.example": [],
                "@other:elsewhere.example": ["DEV"],
            },
            "timeout": 10000,
        }
    )
    # A known user without keys is there with no devices; an unknown one is absent.
    assert result["device_keys"] == {alice.user_id: {}}
    assert set(result["failures"]) == {"remote.example", "elsewhere.example"}
    assert result["master_keys"] == {} and result["self_signing_keys"] == {}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"device_keys": []},
        {"device_keys": {"@a:localhost": {}}},
        {"device_keys": {"@a:localhost": [5]}},
        {"device_keys": {"@a:localhost": "DEV"}},
        {"device_keys": {}, "timeout": 1.5},
        {"device_keys": {}, "timeout": "10000"},
    ],
)
def test_query_bad_bodies(bob: Device, body: Any) -> None:
    bob.query_body(body, 400, "M_BAD_JSON")


def test_query_needs_a_token(http: httpx.Client) -> None:
    expect(http.post(f"{CS}/keys/query", json={"device_keys": {}}), 401, "M_MISSING_TOKEN")
    expect(http.post(f"{CS}/keys/upload", json={}), 401, "M_MISSING_TOKEN")
    expect(http.post(f"{CS}/keys/claim", json={"one_time_keys": {}}), 401, "M_MISSING_TOKEN")


# -- keys go with their device ---------------------------------------------------------------


def test_deleting_a_device_deletes_its_keys(alice: Device, bob: Device) -> None:
    phone = alice.other_device().with_keys(otks=3)
    phone.upload(fallback_keys=phone.fallback_key())
    assert phone.device_id in served_devices(bob, alice)
    path = f"{CS}/devices/{phone.device_id}"
    first = expect(alice.http.request("DELETE", path, headers=alice.user.headers, json={}), 401)
    auth = password_auth(alice.user, first["session"])
    expect(alice.http.request("DELETE", path, headers=alice.user.headers, json={"auth": auth}), 200)
    assert phone.device_id not in served_devices(bob, alice)
    claimed = bob.claim({alice.user_id: {phone.device_id: SIGNED_CURVE}})
    assert claimed["one_time_keys"] == {}


def test_logout_deletes_the_devices_keys(alice: Device, bob: Device) -> None:
    phone = alice.other_device().with_keys(otks=1)
    logout(alice.http, phone.user.access_token)
    assert phone.device_id not in served_devices(bob, alice)
    # Logging in again with the same device ID starts with no keys: a new identity is fine.
    body = login(alice.http, alice.user_id, device_id=phone.device_id)
    user = User(alice.user.localpart, alice.user.password, body["access_token"], body["device_id"])
    again = Device(alice.http, user)
    assert again.device_id == phone.device_id
    again.with_keys()
    assert served_devices(bob, alice)[phone.device_id]["keys"][again.key_id] == again.ed25519


def test_deactivation_deletes_every_key(http: httpx.Client, bob: Device) -> None:
    carol = new_device(http, "carol").with_keys(otks=2)
    carol.upload_cross_signing(carol.cross.body(carol.user_id))
    assert bob.query(carol.user_id)["master_keys"]
    first = expect(http.post(f"{CS}/account/deactivate", headers=carol.user.headers, json={}), 401)
    auth = password_auth(carol.user, first["session"])
    path = f"{CS}/account/deactivate"
    expect(http.post(path, headers=carol.user.headers, json={"auth": auth}), 200)
    result = bob.query(carol.user_id)
    assert result["device_keys"].get(carol.user_id, {}) == {}
    assert result["master_keys"] == {} and result["self_signing_keys"] == {}
    assert bob.claim({carol.user_id: {carol.device_id: SIGNED_CURVE}})["one_time_keys"] == {}


# -- secret storage is plain account data ------------------------------------------------------


def test_secret_storage_account_data(alice: Device) -> None:
    """The account data SDKs use for secret storage and backups round-trips as is."""
    key_id = "abcdefghijklmnop"
    encrypted = {"encrypted": {key_id: {"iv": "aXY", "ciphertext": "Y2lwaGVy", "mac": "bWFj"}}}
    content = {
        "m.secret_storage.default_key": {"key": key_id},
        f"m.secret_storage.key.{key_id}": {
            "algorithm": "m.secret_storage.v1.aes-hmac-sha2",
            "iv": "aXY",
            "mac": "bWFj",
            "passphrase": {"algorithm": "m.pbkdf2", "salt": "c2FsdA", "iterations": 500000},
        },
        "m.cross_signing.master": encrypted,
        "m.cross_signing.self_signing": encrypted,
        "m.cross_signing.user_signing": encrypted,
        "m.megolm_backup.v1": encrypted,
    }
    base = f"{CS}/user/{quote(alice.user_id, safe='')}/account_data"
    for event_type, value in content.items():
        expect(alice.http.put(f"{base}/{event_type}", headers=alice.user.headers, json=value), 200)
    for event_type, value in content.items():
        got = expect(alice.http.get(f"{base}/{event_type}", headers=alice.user.headers), 200)
        assert got == value
    body = expect(
        alice.http.get(f"{CS}/sync", headers=alice.user.headers, params={"timeout": "0"}), 200
    )
    synced = {e["type"]: e["content"] for e in body["account_data"]["events"]}
    assert {k: synced.get(k) for k in content} == content


def test_a_device_holds_a_bounded_number_of_one_time_keys(alice: Device) -> None:
    alice.with_keys()
    keys = {f"curve25519:k{n}": curve_public() for n in range(10_000)}
    assert alice.upload(one_time_keys=keys)["one_time_key_counts"]["curve25519"] == 10_000
    one_more = {"curve25519:last": curve_public()}
    alice.upload(one_time_keys=one_more, status=400, errcode="M_INVALID_PARAM")
    assert alice.upload()["one_time_key_counts"]["curve25519"] == 10_000
