"""Cross-signing against the real server: /keys/device_signing/upload (with its
user-interactive auth rules) and /keys/signatures/upload, with real ed25519 keys.

https://spec.matrix.org/latest/client-server-api/#cross-signing
"""

from __future__ import annotations

from typing import Any

import httpx
import nacl.signing
import pytest

from tests.e2e.matrix import User, login, logout, password_auth
from tests.e2e.test_keys import verify_signed
from tests.e2e.test_keys_client import CrossSigningKeys, Device, new_device, public_b64, sign

BAD_SIGNATURE = "M_INVALID_SIGNATURE"


@pytest.fixture
def alice(http: httpx.Client) -> Device:
    return new_device(http, "xs-alice").with_keys()


@pytest.fixture
def bob(http: httpx.Client) -> Device:
    return new_device(http, "xs-bob").with_keys()


def with_cross_signing(device: Device) -> Device:
    device.upload_cross_signing(device.cross.body(device.user_id))
    return device


def upload_with_password(device: Device, body: dict[str, Any]) -> Any:
    """Upload cross-signing keys through the password stage of user-interactive auth."""
    challenge = device.upload_cross_signing(body, 401)
    assert ["m.login.password"] in [flow["stages"] for flow in challenge["flows"]]
    auth = password_auth(device.user, challenge["session"])
    return device.upload_cross_signing({**body, "auth": auth})


# -- /keys/device_signing/upload ---------------------------------------------------------------


def test_first_upload_needs_no_auth_and_is_served(alice: Device, bob: Device) -> None:
    keys = alice.cross.body(alice.user_id)
    assert alice.upload_cross_signing(keys) == {}
    theirs = bob.query(alice.user_id)
    assert theirs["master_keys"] == {alice.user_id: keys["master_key"]}
    assert theirs["self_signing_keys"] == {alice.user_id: keys["self_signing_key"]}
    assert theirs["user_signing_keys"] == {}  # only ever for its owner
    mine = alice.query(alice.user_id, bob.user_id)
    assert mine["user_signing_keys"] == {alice.user_id: keys["user_signing_key"]}
    served = theirs["self_signing_keys"][alice.user_id]
    verify_signed(served, alice.user_id, alice.cross.key_id("master"), alice.cross.public("master"))


def test_the_same_keys_again_need_no_auth(alice: Device) -> None:
    keys = alice.cross.body(alice.user_id)
    alice.upload_cross_signing(keys)
    alice.upload_cross_signing(keys)  # a retried request
    alice.upload_cross_signing({"master_key": keys["master_key"]})
    alice.upload_cross_signing({})  # nothing new at all


def test_master_key_alone_then_the_others(alice: Device, bob: Device) -> None:
    alice.upload_cross_signing(alice.cross.body(alice.user_id, "master"))
    assert bob.query(alice.user_id)["self_signing_keys"] == {}
    # Adding keys to an existing master key is a change: it needs auth.
    upload_with_password(alice, alice.cross.body(alice.user_id, "self_signing", "user_signing"))
    assert alice.user_id in bob.query(alice.user_id)["self_signing_keys"]


def test_replacing_keys_needs_auth(alice: Device, bob: Device) -> None:
    with_cross_signing(alice)
    old = bob.query(alice.user_id)
    replacement = CrossSigningKeys()
    body = replacement.body(alice.user_id)
    challenge = alice.upload_cross_signing(body, 401)
    assert "session" in challenge
    assert bob.query(alice.user_id)["master_keys"] == old["master_keys"]
    wrong = {**password_auth(alice.user, challenge["session"]), "password": "wrong"}
    alice.upload_cross_signing({**body, "auth": wrong}, 401, "M_FORBIDDEN")
    assert bob.query(alice.user_id)["master_keys"] == old["master_keys"]
    upload_with_password(alice, body)
    assert bob.query(alice.user_id)["master_keys"] == {alice.user_id: body["master_key"]}


def test_a_new_master_key_drops_what_the_old_one_signed(alice: Device, bob: Device) -> None:
    with_cross_signing(alice)
    alice.cross = CrossSigningKeys()
    upload_with_password(alice, alice.cross.body(alice.user_id, "master"))
    theirs = bob.query(alice.user_id)
    assert theirs["master_keys"][alice.user_id]["keys"] == {
        alice.cross.key_id("master"): alice.cross.public("master")
    }
    assert theirs["self_signing_keys"] == {}
    assert alice.query(alice.user_id)["user_signing_keys"] == {}


def test_self_signing_key_must_be_signed_by_the_master_key(alice: Device, bob: Device) -> None:
    cross = alice.cross
    unsigned = cross.key(alice.user_id, "self_signing", signed_by_master=False)
    body = {"master_key": cross.key(alice.user_id, "master"), "self_signing_key": unsigned}
    alice.upload_cross_signing(body, 400, BAD_SIGNATURE)
    stranger = nacl.signing.SigningKey.generate()
    forged = sign(unsigned, alice.user_id, cross.key_id("master"), stranger)
    body["self_signing_key"] = forged
    alice.upload_cross_signing(body, 400, BAD_SIGNATURE)
    tampered = cross.key(alice.user_id, "user_signing")
    tampered["usage"] = ["user_signing", "self_signing"]
    alice.upload_cross_signing(
        {"master_key": body["master_key"], "user_signing_key": tampered}, 400, BAD_SIGNATURE
    )
    assert bob.query(alice.user_id)["master_keys"] == {}
    # Checked against the stored master key when none comes with it.
    alice.upload_cross_signing({"master_key": body["master_key"]})
    alice.upload_cross_signing({"self_signing_key": forged}, 400, BAD_SIGNATURE)


def test_no_master_key_at_all(alice: Device) -> None:
    body = alice.cross.body(alice.user_id, "self_signing")
    alice.upload_cross_signing(body, 400, "M_MISSING_PARAM")
    alice.upload_cross_signing({}, 400, "M_MISSING_PARAM")


def _other_user(keys: dict[str, Any]) -> None:
    keys["user_id"] = "@someone-else:localhost"


def _usage(keys: dict[str, Any]) -> None:
    keys["usage"] = ["self_signing"]


def _two_keys(keys: dict[str, Any]) -> None:
    keys["keys"]["ed25519:" + public_b64(nacl.signing.SigningKey.generate())] = "x"


def _key_id_mismatch(keys: dict[str, Any]) -> None:
    [public] = keys["keys"].values()
    keys["keys"] = {"ed25519:" + public_b64(nacl.signing.SigningKey.generate()): public}


def _bad_public_key(keys: dict[str, Any]) -> None:
    keys["keys"] = {"ed25519:abc": "abc"}


def _curve_key(keys: dict[str, Any]) -> None:
    [public] = keys["keys"].values()
    keys["keys"] = {"curve25519:" + public: public}


MALFORMED_MASTER_KEYS = {
    "another user": (_other_user, "M_INVALID_PARAM"),
    "wrong usage": (_usage, "M_INVALID_PARAM"),
    "usage not a list": (lambda k: k.update({"usage": "master"}), "M_BAD_JSON"),
    "no keys": (lambda k: k.pop("keys"), "M_INVALID_PARAM"),
    "two keys": (_two_keys, "M_INVALID_PARAM"),
    "key ID is not the key": (_key_id_mismatch, "M_INVALID_PARAM"),
    "not an ed25519 key": (_bad_public_key, "M_INVALID_PARAM"),
    "a curve25519 key": (_curve_key, "M_INVALID_PARAM"),
    "signatures not an object": (lambda k: k.update({"signatures": []}), "M_BAD_JSON"),
    "a float": (lambda k: k.update({"x": 0.5}), "M_BAD_JSON"),
}


@pytest.mark.parametrize(
    ("change", "errcode"), MALFORMED_MASTER_KEYS.values(), ids=MALFORMED_MASTER_KEYS.keys()
)
def test_malformed_cross_signing_keys(
    alice: Device, bob: Device, change: Any, errcode: str
) -> None:
    master = alice.cross.key(alice.user_id, "master")
    change(master)
    alice.upload_cross_signing({"master_key": master}, 400, errcode)
    assert bob.query(alice.user_id)["master_keys"] == {}


@pytest.mark.parametrize("body", [[], {"master_key": "x"}, {"master_key": {}, "auth": []}])
def test_device_signing_bad_bodies(alice: Device, body: Any) -> None:
    alice.upload_cross_signing(body, 400, "M_BAD_JSON")


def test_a_key_may_not_take_a_device_id(http: httpx.Client, alice: Device, bob: Device) -> None:
    cross = CrossSigningKeys()
    body = login(http, alice.user_id, alice.user.password, device_id=cross.public("master"))
    clash = Device(
        http,
        User(alice.user.localpart, alice.user.password, body["access_token"], body["device_id"]),
        cross=cross,
    )
    clash.upload_cross_signing(cross.body(alice.user_id), 403, "M_FORBIDDEN")
    assert bob.query(alice.user_id)["master_keys"] == {}


# -- /keys/signatures/upload -------------------------------------------------------------------


def served_device(viewer: Device, owner: Device, device_id: str) -> dict[str, Any]:
    device: dict[str, Any] = viewer.query(owner.user_id)["device_keys"][owner.user_id][device_id]
    return device


def test_self_signing_key_signs_own_devices(alice: Device, bob: Device) -> None:
    with_cross_signing(alice)
    phone = alice.other_device().with_keys()
    device = served_device(alice, alice, phone.device_id)
    signed = sign(
        device, alice.user_id, alice.cross.key_id("self_signing"), alice.cross.self_signing
    )
    answer = alice.upload_signatures({alice.user_id: {phone.device_id: signed}})
    assert answer == {"failures": {}}
    served = served_device(bob, alice, phone.device_id)
    ssk = alice.cross.key_id("self_signing")
    assert served["signatures"][alice.user_id][ssk] == signed["signatures"][alice.user_id][ssk]
    verify_signed(served, alice.user_id, ssk, alice.cross.public("self_signing"))
    verify_signed(served, alice.user_id, phone.key_id, phone.ed25519)  # its own, still there


def test_devices_sign_own_master_key(alice: Device, bob: Device) -> None:
    with_cross_signing(alice)
    master = bob.query(alice.user_id)["master_keys"][alice.user_id]
    signed = alice.sign(master)
    answer = alice.upload_signatures({alice.user_id: {alice.cross.public("master"): signed}})
    assert answer == {"failures": {}}
    served = bob.query(alice.user_id)["master_keys"][alice.user_id]
    verify_signed(served, alice.user_id, alice.key_id, alice.ed25519)
    # Sending the served object (with that signature) again is fine and changes nothing.
    again = alice.upload_signatures({alice.user_id: {alice.cross.public("master"): served}})
    assert again == {"failures": {}}
    assert bob.query(alice.user_id)["master_keys"][alice.user_id] == served
    # A signature by something that is not one of alice's devices fails, as does a forgery.
    stranger = nacl.signing.SigningKey.generate()
    for key_id in ("ed25519:NOTADEVICE", alice.key_id):
        forged = sign(master, alice.user_id, key_id, stranger)
        answer = alice.upload_signatures({alice.user_id: {alice.cross.public("master"): forged}})
        failure = answer["failures"][alice.user_id][alice.cross.public("master")]
        assert failure["errcode"] == BAD_SIGNATURE
    assert bob.query(alice.user_id)["master_keys"][alice.user_id] == served


def test_user_signing_key_signs_other_users(http: httpx.Client, alice: Device, bob: Device) -> None:
    with_cross_signing(alice)
    with_cross_signing(bob)
    carol = with_cross_signing(new_device(http, "xs-carol").with_keys())
    bobs_master = alice.query(bob.user_id)["master_keys"][bob.user_id]
    usk = alice.cross.key_id("user_signing")
    signed = sign(bobs_master, alice.user_id, usk, alice.cross.user_signing)
    answer = alice.upload_signatures({bob.user_id: {bob.cross.public("master"): signed}})
    assert answer == {"failures": {}}
    # Alice sees her signature; Bob and Carol do not (a user-signing key's are private).
    seen_by_alice = alice.query(bob.user_id)["master_keys"][bob.user_id]
    verify_signed(seen_by_alice, alice.user_id, usk, alice.cross.public("user_signing"))
    for viewer in (bob, carol):
        master = viewer.query(bob.user_id)["master_keys"][bob.user_id]
        assert alice.user_id not in master.get("signatures", {})


def test_signature_failures_are_reported_per_key(alice: Device, bob: Device) -> None:
    with_cross_signing(alice)
    with_cross_signing(bob)
    phone = alice.other_device().with_keys()
    ssk_id = alice.cross.key_id("self_signing")
    device = served_device(alice, alice, phone.device_id)
    good = sign(device, alice.user_id, ssk_id, alice.cross.self_signing)
    stranger = nacl.signing.SigningKey.generate()
    forged = sign(served_device(alice, alice, alice.device_id), alice.user_id, ssk_id, stranger)
    mismatched = sign(
        {**served_device(alice, alice, alice.device_id), "algorithms": []},
        alice.user_id,
        ssk_id,
        alice.cross.self_signing,
    )
    unsigned = {k: v for k, v in device.items() if k != "signatures"}
    bobs_master = alice.query(bob.user_id)["master_keys"][bob.user_id]
    usk_id = alice.cross.key_id("user_signing")
    bad_usk = sign(bobs_master, alice.user_id, usk_id, stranger)
    answer = alice.upload_signatures(
        {
            alice.user_id: {
                phone.device_id: good,
                alice.device_id: forged,
                "NOSUCHDEVICE": good,
            },
            bob.user_id: {bob.cross.public("master"): bad_usk, "BOBSDEVICE": bobs_master},
            "@nobody:remote.example": {"KEY": bobs_master},
        }
    )
    failures = answer["failures"]
    assert phone.device_id not in failures.get(alice.user_id, {})
    assert failures[alice.user_id][alice.device_id]["errcode"] == BAD_SIGNATURE
    assert failures[alice.user_id]["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert failures[bob.user_id][bob.cross.public("master")]["errcode"] == BAD_SIGNATURE
    assert failures[bob.user_id]["BOBSDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert failures["@nobody:remote.example"]["KEY"]["errcode"] == "M_NOT_FOUND"
    for entry in (e for by_key in failures.values() for e in by_key.values()):
        assert isinstance(entry["error"], str)
    # The good one is stored, the others are not.
    assert ssk_id in served_device(bob, alice, phone.device_id)["signatures"][alice.user_id]
    assert ssk_id not in served_device(bob, alice, alice.device_id)["signatures"][alice.user_id]
    bobs_served = alice.query(bob.user_id)["master_keys"][bob.user_id]
    assert alice.user_id not in bobs_served.get("signatures", {})
    more = alice.upload_signatures(
        {alice.user_id: {alice.device_id: mismatched, phone.device_id: unsigned}}
    )["failures"][alice.user_id]
    assert more[alice.device_id]["errcode"] == "M_UNKNOWN"
    assert more[phone.device_id]["errcode"] == BAD_SIGNATURE


def test_signatures_without_cross_signing_keys(alice: Device, bob: Device) -> None:
    device = served_device(alice, alice, alice.device_id)
    signed = sign(device, alice.user_id, "ed25519:whatever", nacl.signing.SigningKey.generate())
    answer = alice.upload_signatures(
        {alice.user_id: {alice.device_id: signed}, bob.user_id: {"KEY": signed}}
    )
    assert answer["failures"][alice.user_id][alice.device_id]["errcode"] == "M_NOT_FOUND"
    assert answer["failures"][bob.user_id]["KEY"]["errcode"] == "M_NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [[], {"@a:localhost": []}, {"@a:localhost": {"DEV": "x"}}, {"@a:localhost": {"DEV": []}}],
)
def test_signatures_bad_bodies(alice: Device, body: Any) -> None:
    alice.post("/keys/signatures/upload", body, 400, "M_BAD_JSON")


def test_signatures_bad_user_id(alice: Device) -> None:
    alice.post("/keys/signatures/upload", {"bob": {"KEY": {}}}, 400, "M_INVALID_PARAM")


def test_too_many_signed_objects(alice: Device) -> None:
    body = {alice.user_id: {f"DEVICE{n}": {} for n in range(1001)}}
    alice.post("/keys/signatures/upload", body, 413, "M_TOO_LARGE")


def test_deleted_device_takes_its_signatures(alice: Device, bob: Device) -> None:
    with_cross_signing(alice)
    phone = alice.other_device().with_keys()
    device = served_device(alice, alice, phone.device_id)
    ssk = alice.cross.key_id("self_signing")
    alice.upload_signatures(
        {
            alice.user_id: {
                phone.device_id: sign(device, alice.user_id, ssk, alice.cross.self_signing)
            }
        }
    )
    master = bob.query(alice.user_id)["master_keys"][alice.user_id]
    alice.upload_signatures({alice.user_id: {alice.cross.public("master"): phone.sign(master)}})
    served = bob.query(alice.user_id)["master_keys"][alice.user_id]
    assert phone.key_id in served["signatures"][alice.user_id]
    logout(alice.http, phone.user.access_token)
    served = bob.query(alice.user_id)["master_keys"][alice.user_id]
    assert phone.key_id not in served.get("signatures", {}).get(alice.user_id, {})


def test_changed_device_keys_drop_the_signatures_of_the_old_ones(
    alice: Device, bob: Device
) -> None:
    with_cross_signing(alice)
    ssk = alice.cross.key_id("self_signing")
    device = served_device(alice, alice, alice.device_id)
    signed = sign(device, alice.user_id, ssk, alice.cross.self_signing)
    alice.upload_signatures({alice.user_id: {alice.device_id: signed}})
    assert ssk in served_device(bob, alice, alice.device_id)["signatures"][alice.user_id]
    alice.upload(device_keys=alice.device_keys())  # the same keys: the signature stays
    assert ssk in served_device(bob, alice, alice.device_id)["signatures"][alice.user_id]
    alice.upload(device_keys=alice.device_keys(algorithms=["m.megolm.v1.aes-sha2"]))
    assert ssk not in served_device(bob, alice, alice.device_id)["signatures"][alice.user_id]
