"""The key services on a real Database (writer thread, group commit): who is woken when
a device list changes, and what goes with a device or an account."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import apsw
import canonicaljson
import nacl.signing
import pytest

from dendrite_lite.accounts.account import deactivate_user
from dendrite_lite.accounts.devices import Devices
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.e2ee.cross_signing import CrossSigning
from dendrite_lite.e2ee.device_keys import DeviceKeys
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import device_lists, devices, e2e_keys
from dendrite_lite.storage.db import Database
from dendrite_lite.types import DeviceId, UserId
from tests.unit.e2ee.conftest import World

T = TypeVar("T")
A, B, C = "@a:localhost", "@b:localhost", "@c:localhost"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def sign(obj: dict[str, Any], user: str, key_id: str, key: nacl.signing.SigningKey) -> dict:
    signable = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = b64(key.sign(canonicaljson.encode_canonical_json(signable)).signature)
    signed = dict(obj)
    signed["signatures"] = {**obj.get("signatures", {}), user: {key_id: signature}}
    return signed


def requester(user_id: str, device_id: str) -> Requester:
    return Requester(UserId(user_id), DeviceId(device_id), False, False, b"")


class FakeAccount:
    """Stands in for Account: user-interactive auth always passes, and it has the notifier."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.asked = 0

    async def authenticate_owner(self, *args: Any) -> None:
        self.asked += 1


class Env:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.notifier = Notifier()
        self.keys = DeviceKeys(db, self.notifier, "localhost")
        self.account = FakeAccount(self.notifier)
        self.cross = CrossSigning(db, self.notifier, self.account)  # type: ignore[arg-type]
        self.devices = Devices(db, self.account)  # type: ignore[arg-type]
        self.signing: dict[tuple[str, str], nacl.signing.SigningKey] = {}

    async def run(self, fn: Callable[[World], T]) -> T:
        return await self.db.write(lambda conn: fn(World(conn)))

    async def read(self, fn: Callable[[apsw.Connection], T]) -> T:
        return await self.db.read(fn)

    def device_keys(self, user: str, device: str) -> dict[str, Any]:
        key = self.signing.setdefault((user, device), nacl.signing.SigningKey.generate())
        obj = {
            "user_id": user,
            "device_id": device,
            "algorithms": ["m.megolm.v1.aes-sha2"],
            "keys": {f"ed25519:{device}": b64(bytes(key.verify_key))},
        }
        return sign(obj, user, f"ed25519:{device}", key)

    async def publish(self, user: str, device: str) -> None:
        await self.keys.upload(requester(user, device), self.device_keys(user, device), None, None)

    def woken(self, tick: int) -> set[str]:
        return {u for u in (A, B, C) if self.notifier.changed_since(u, tick)}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = Database(tmp_path / "homeserver.db")
    db.open()
    environment = Env(db)

    def setup(world: World) -> None:
        world.user(A, "A1", "A2")
        world.user(B, "B1")
        world.user(C, "C1")
        world.member("!room", A, "join")
        world.member("!room", B, "join")
        world.member("!elsewhere", C, "join")

    await environment.run(setup)
    yield environment
    db.close()


async def test_publishing_wakes_room_mates(env: Env) -> None:
    tick = env.notifier.tick
    await env.publish(B, "B1")
    assert env.woken(tick) == {A, B}
    changed = await env.read(lambda conn: device_lists.changed_users(conn, A, 0, 10**9))
    assert changed == [(B, False)]
    assert env.notifier.position > 0
    tick = env.notifier.tick
    await env.publish(B, "B1")  # the same keys again: no change, nobody woken
    await env.keys.claim(requester(C, "C1"), {B: {"B1": "signed_curve25519"}})
    assert env.woken(tick) == set()


async def test_deleting_devices_wakes_only_if_they_had_keys(env: Env) -> None:
    await env.publish(A, "A2")
    tick = env.notifier.tick
    await env.devices.delete(requester(A, "A1"), ["A1"], None, "POST", "/x")  # no keys
    assert env.woken(tick) == set()
    await env.devices.delete(requester(A, "A2"), ["A2"], None, "POST", "/x")
    assert env.woken(tick) == {A, B}
    assert await env.read(lambda conn: e2e_keys.device_keys(conn, A, "A2")) is None


async def test_user_signing_key_wakes_only_its_owner(env: Env) -> None:
    master, usk = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    m_pub, u_pub = b64(bytes(master.verify_key)), b64(bytes(usk.verify_key))
    master_key = {"user_id": A, "usage": ["master"], "keys": {f"ed25519:{m_pub}": m_pub}}
    usk_key = sign(
        {"user_id": A, "usage": ["user_signing"], "keys": {f"ed25519:{u_pub}": u_pub}},
        A,
        f"ed25519:{m_pub}",
        master,
    )
    tick = env.notifier.tick
    await env.cross.upload_keys(requester(A, "A1"), {"master": master_key}, None, "/x")
    assert env.woken(tick) == {A, B}
    assert env.account.asked == 0  # the first master key needs no auth
    tick = env.notifier.tick
    await env.cross.upload_keys(requester(A, "A1"), {"user_signing": usk_key}, None, "/x")
    assert env.account.asked == 1
    assert env.woken(tick) == {A}


async def test_signatures_go_with_the_device(env: Env) -> None:
    await env.publish(A, "A1")

    def add(conn: apsw.Connection) -> None:
        e2e_keys.add_signatures(
            conn,
            [
                e2e_keys.Signature(A, e2e_keys.DEVICE, "A1", A, "ed25519:ssk", "sig1"),
                e2e_keys.Signature(A, e2e_keys.MASTER, "mpub", A, "ed25519:A1", "sig2"),
                e2e_keys.Signature(A, e2e_keys.MASTER, "mpub", A, "ed25519:A2", "sig3"),
            ],
        )

    await env.db.write(add)
    await env.devices.delete(requester(A, "A1"), ["A1"], None, "POST", "/x")
    left = await env.read(lambda conn: e2e_keys.signatures_for(conn, A, A))
    assert left == {(e2e_keys.MASTER, "mpub"): {A: {"ed25519:A2": "sig3"}}}


async def test_claims_are_oldest_first_and_once(env: Env) -> None:
    def add(conn: apsw.Connection) -> None:
        e2e_keys.add_one_time_keys(conn, A, "A1", [("alg", "zzz", b'"1"'), ("alg", "aaa", b'"2"')])
        e2e_keys.add_one_time_keys(conn, A, "A1", [("alg", "mmm", b'"3"')])

    await env.db.write(add)
    got = []
    for _ in range(4):
        answer = await env.keys.claim(requester(B, "B1"), {A: {"A1": "alg"}})
        got.extend(answer["one_time_keys"].get(A, {}).get("A1", {}))
    assert got == ["alg:zzz", "alg:aaa", "alg:mmm"]


async def test_delete_all_records_one_change(env: Env) -> None:
    await env.publish(A, "A1")
    await env.publish(A, "A2")

    def wipe(conn: apsw.Connection) -> Any:
        before = len(device_lists.changed_users(conn, A, 0, 10**9))
        position = devices.delete_all(conn, A, except_device="A1")
        again = devices.delete_all(conn, A, except_device="A1")  # nothing left to delete
        rows = conn.execute("SELECT count(*) FROM device_list_changes").fetchall()
        return before, position, again, rows

    before, position, again, rows = await env.db.write(wipe)
    assert position is not None and again is None
    assert rows == [(3,)]  # two publications, one deletion
    assert before == 1


async def test_deactivation_deletes_keys_and_tells_once(env: Env) -> None:
    await env.publish(B, "B1")
    master = nacl.signing.SigningKey.generate()
    pub = b64(bytes(master.verify_key))
    master_key = {"user_id": B, "usage": ["master"], "keys": {f"ed25519:{pub}": pub}}
    await env.cross.upload_keys(requester(B, "B1"), {"master": master_key}, None, "/x")
    count = "SELECT count(*) FROM device_list_changes"
    before = (await env.read(lambda conn: conn.execute(count).fetchall()))[0][0]
    tick = env.notifier.tick
    assert await deactivate_user(env.db, UserId(B), erase=False, notifier=env.notifier)
    after = (await env.read(lambda conn: conn.execute(count).fetchall()))[0][0]
    assert after == before + 1
    assert A in env.woken(tick)
    keys = await env.read(lambda conn: e2e_keys.cross_signing_keys(conn, [B]))
    assert keys == {}
    assert await env.read(lambda conn: e2e_keys.all_device_keys(conn, B)) == {}
