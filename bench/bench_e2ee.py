#!/usr/bin/env python3
"""bench_e2ee: end-to-end encryption key endpoints (issue 5), dendrite-lite beside Synapse
1.163.2 on SQLite, in the same run.

    python bench/bench_e2ee.py [--servers dendrite,synapse] [--quick] [--json OUT]
    python bench/bench_e2ee.py --report RUN1.json RUN2.json   # markdown for RESULTS.md

For each server in turn (fresh data directory, server pinned to --server-cpu, this client
on --client-cpu, all on 127.0.0.1):

  setup        --users users (50) with --devices devices each (5: registration + 4 logins).
               Every device uploads real device keys (ed25519 + curve25519, signed with
               its ed25519 key over canonical JSON, via pynacl, as clients do),
               --otks signed one-time keys (signed_curve25519) and a fallback key.  Every
               user uploads cross-signing keys (master, self-signing, user-signing; the
               subkeys signed by the master key) and signs each of its devices with the
               self-signing key (/keys/signatures/upload), as a verified client would.
  /keys/query  one device asks for every device of all the users ({"device_keys":
               {user: []}}: 50 users x 5 devices): --query-samples sequential requests.
               Each answer must hold every device and every master key.
  /keys/claim  one device claims a signed_curve25519 key of 20 devices (4 users x 5
               devices; the window moves on by 20 devices each time so that no device
               runs out of one-time keys): --claim-samples sequential requests.  Each
               answer must hold 20 keys, none of them a fallback key.
  key backup   a user creates a backup version (m.megolm_backup.v1.curve25519-aes-sha2)
               and uploads --sessions sessions (50 rooms x 100) in one PUT
               /room_keys/keys?version=V, with session_data shaped like real ones (43-char
               ephemeral key, ~750-char ciphertext, 11-char MAC: ~0.9 KB a session, ~4.5
               MB in all); --backup-uploads times, each into a new version.  Reported: the
               PUT's latency and server CPU, and the database's growth: its logical size
               ((page_count - freelist_count) x page_size, read through the WAL by a
               read-only connection) before and after, for dendrite-lite's homeserver.db
               and Synapse's homeserver.db alike.

Latency: client wall time from writing the request to having read the whole body.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
from harness import CS, Api, Bench, RawConn, Row, User

try:
    import nacl.public
    import nacl.signing
except ImportError:  # pragma: no cover
    sys.exit("bench_e2ee needs pynacl (it is in the project's test extras)")

GOAL_NOTE = "issue 5 states no numeric goal for these; figures beside Synapse's"
OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"
BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--users", type=int, help="users (50; quick 10)")
    p.add_argument("--devices", type=int, default=5, help="devices per user (5)")
    p.add_argument("--otks", type=int, default=20, help="one-time keys per device (20)")
    p.add_argument("--claim-devices", type=int, default=20, help="devices per claim (20)")
    p.add_argument("--query-samples", type=int, help="/keys/query samples (200; quick 20)")
    p.add_argument("--claim-samples", type=int, help="/keys/claim samples (100; quick 10)")
    p.add_argument("--sessions", type=int, default=5000, help="sessions in the backup PUT (5000)")
    p.add_argument(
        "--backup-uploads", type=int, help="backup PUTs, each a new version (3; quick 1)"
    )


def defaults(a: argparse.Namespace) -> None:
    for name, full, quick in [
        ("users", 50, 10),
        ("query_samples", 200, 20),
        ("claim_samples", 100, 10),
        ("backup_uploads", 3, 1),
    ]:
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)


# ---------------------------------------------------------------------------------------
# keys, signed as clients sign them
# ---------------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def canonical(obj: Any) -> bytes:
    # Matrix canonical JSON; equal to json.dumps with these options for the ASCII strings
    # and small integers signed here.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(
    obj: dict[str, Any], user_id: str, key_id: str, key: nacl.signing.SigningKey
) -> dict[str, Any]:
    signable = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    sig = b64(key.sign(canonical(signable)).signature)
    out = json.loads(json.dumps(obj))
    out.setdefault("signatures", {}).setdefault(user_id, {})[key_id] = sig
    return out


class Device:
    def __init__(self, user: User) -> None:
        self.user = user
        self.ed = nacl.signing.SigningKey.generate()
        self.curve = b64(bytes(nacl.public.PrivateKey.generate().public_key))
        self.key_ids = 0

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.user.device_id}"

    def device_keys(self) -> dict[str, Any]:
        obj = {
            "user_id": self.user.user_id,
            "device_id": self.user.device_id,
            "algorithms": [OLM, MEGOLM],
            "keys": {
                f"ed25519:{self.user.device_id}": b64(bytes(self.ed.verify_key)),
                f"curve25519:{self.user.device_id}": self.curve,
            },
        }
        return sign(obj, self.user.user_id, self.key_id, self.ed)

    def one_time_key(self, fallback: bool = False) -> tuple[str, dict[str, Any]]:
        self.key_ids += 1
        obj: dict[str, Any] = {"key": b64(bytes(nacl.public.PrivateKey.generate().public_key))}
        if fallback:
            obj["fallback"] = True
        kid = f"signed_curve25519:{b64(self.key_ids.to_bytes(4, 'big') + b'AA')}"
        return kid, sign(obj, self.user.user_id, self.key_id, self.ed)


class CrossSigning:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.keys = {
            w: nacl.signing.SigningKey.generate()
            for w in ("master", "self_signing", "user_signing")
        }

    def pub(self, which: str) -> str:
        return b64(bytes(self.keys[which].verify_key))

    def key_id(self, which: str) -> str:
        return f"ed25519:{self.pub(which)}"

    def body(self) -> dict[str, Any]:
        out = {}
        for w in ("master", "self_signing", "user_signing"):
            obj: dict[str, Any] = {
                "user_id": self.user_id,
                "usage": [w],
                "keys": {self.key_id(w): self.pub(w)},
            }
            if w != "master":
                obj = sign(obj, self.user_id, self.key_id("master"), self.keys["master"])
            out[f"{w}_key"] = obj
        return out


def session_data(rng: random.Random) -> dict[str, Any]:
    """The shape of a real m.megolm_backup.v1.curve25519-aes-sha2 session: the ciphertext
    is an AES-CBC encryption of the exported session JSON (~560 bytes)."""
    return {
        "first_message_index": rng.randrange(0, 10),
        "forwarded_count": 0,
        "is_verified": True,
        "session_data": {
            "ephemeral": b64(rng.randbytes(32)),
            "ciphertext": b64(rng.randbytes(560)),
            "mac": b64(rng.randbytes(8)),
        },
    }


# ---------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------
async def setup(b: Bench) -> list[list[Device]]:
    a, port = b.args, b.port
    t0 = time.perf_counter()
    users = await h.register_many(port, "keys", a.users)
    logins = [h.login(port, u, f"device {k}") for u in users for k in range(1, a.devices)]
    more = await h.bounded(logins, 4, f"{len(logins)} logins")
    devices: list[list[Device]] = []
    for i, u in enumerate(users):
        per = [u, *more[i * (a.devices - 1) : (i + 1) * (a.devices - 1)]]
        devices.append([Device(x) for x in per])

    async def upload(d: Device) -> None:
        api = Api(port, d.user.access_token)
        try:
            otks = dict(d.one_time_key() for _ in range(a.otks))
            body = {
                "device_keys": d.device_keys(),
                "one_time_keys": otks,
                "fallback_keys": dict([d.one_time_key(fallback=True)]),
            }
            r = await api.call("POST", f"{CS}/keys/upload", body)
            if r.get("one_time_key_counts", {}).get("signed_curve25519") != a.otks:
                raise h.BenchError(f"keys/upload: counts {r}")
        finally:
            await api.aclose()

    flat = [d for per in devices for d in per]
    await h.bounded([upload(d) for d in flat], 8, f"keys/upload x{len(flat)}")

    async def cross_sign(per: list[Device]) -> None:
        first = per[0]
        cs = CrossSigning(first.user.user_id)
        api = Api(port, first.user.access_token)
        try:
            body = cs.body()
            r = await api.call("POST", f"{CS}/keys/device_signing/upload", body, ok=(401,))
            if "session" in r and "flows" in r:  # a server that wants UIA even the first time
                body["auth"] = {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": first.user.localpart},
                    "password": first.user.password,
                    "session": r["session"],
                }
                await api.call("POST", f"{CS}/keys/device_signing/upload", body)
            sigs = {
                d.user.device_id: sign(
                    d.device_keys(), cs.user_id, cs.key_id("self_signing"), cs.keys["self_signing"]
                )
                for d in per
            }
            r = await api.call("POST", f"{CS}/keys/signatures/upload", {cs.user_id: sigs})
            if r.get("failures"):
                raise h.BenchError(f"signatures/upload failures: {str(r)[:400]}")
        finally:
            await api.aclose()

    await h.bounded([cross_sign(per) for per in devices], 4, f"cross-signing x{len(devices)}")
    h.log(f"{b.target.kind}: e2ee setup in {time.perf_counter() - t0:.0f} s")
    return devices


# ---------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------
async def workload(b: Bench) -> dict[str, Any]:
    a, port = b.args, b.port
    devices = await setup(b)
    phases: dict[str, Any] = {}
    out: dict[str, Any] = {"phases": phases, "settle": await h.settle(b)}
    out["shape"] = {
        "users": a.users,
        "devices": a.devices,
        "otks": a.otks,
        "claim_devices": a.claim_devices,
        "sessions": a.sessions,
    }
    me = devices[0][0]
    user_ids = [per[0].user.user_id for per in devices]
    n_devices = sum(len(per) for per in devices)

    query_body = h.dumps({"device_keys": {u: [] for u in user_ids}})
    sizes: list[int] = []

    def check_query(status: int, body: bytes) -> str | None:
        d = json.loads(body)
        got = sum(len(v) for v in (d.get("device_keys") or {}).values())
        if got != n_devices:
            return f"{got} devices, expected {n_devices}"
        if len(d.get("master_keys") or {}) != len(user_ids):
            return f"{len(d.get('master_keys') or {})} master keys, expected {len(user_ids)}"
        sizes.append(len(body))
        return None

    c = RawConn(port, me.user.access_token)

    async def query(conn: RawConn, i: int, k: int) -> tuple[int, bytes]:
        return await conn.request("POST", f"{CS}/keys/query", query_body)

    name = f"/keys/query, {len(user_ids)} users x {a.devices} devices"
    phases[name] = await h.measure(
        b, name, [c], query, count=a.query_samples, warmup=5, check=check_query
    )
    phases[name]["response_bytes"] = sizes[-1] if sizes else None
    out["query_phase"] = name

    flat = [d for per in devices for d in per]
    window = a.claim_devices

    def claim_body(k: int) -> bytes:
        start = ((k + 3) * window) % len(flat)  # k < 0 for the warm-ups
        chosen = [flat[(start + j) % len(flat)] for j in range(window)]
        wanted: dict[str, dict[str, str]] = {}
        for d in chosen:
            wanted.setdefault(d.user.user_id, {})[d.user.device_id] = "signed_curve25519"
        return h.dumps({"one_time_keys": wanted})

    def check_claim(status: int, body: bytes) -> str | None:
        d = json.loads(body)
        keys = [kv for devs in (d.get("one_time_keys") or {}).values() for kv in devs.values()]
        if len(keys) != window:
            return f"{len(keys)} keys claimed, expected {window}"
        for kv in keys:
            for v in kv.values():
                if isinstance(v, dict) and v.get("fallback"):
                    return "a fallback key was handed out: one-time keys ran out"
        return None

    async def claim(conn: RawConn, i: int, k: int) -> tuple[int, bytes]:
        return await conn.request("POST", f"{CS}/keys/claim", claim_body(k))

    if (a.claim_samples + 3) * window > len(flat) * a.otks:
        raise h.BenchError("not enough one-time keys for the claims: raise --otks")
    name = f"/keys/claim, {window} devices"
    phases[name] = await h.measure(
        b, name, [c], claim, count=a.claim_samples, warmup=3, check=check_claim
    )
    out["claim_phase"] = name
    await c.aclose()

    out["backup"] = await backup(b, devices[min(1, len(devices) - 1)][0])
    phases["key backup PUT"] = out["backup"]["summary"]
    return out


async def backup(b: Bench, d: Device) -> dict[str, Any]:
    a, port = b.args, b.port
    rng = random.Random(5)
    rooms = 50
    per_room = max(1, a.sessions // rooms)
    body_obj: dict[str, Any] = {"rooms": {}}
    n = 0
    for _room in range(rooms):
        sessions = {}
        for _ in range(per_room):
            if n >= a.sessions:
                break
            sessions[b64(rng.randbytes(32))] = session_data(rng)
            n += 1
        body_obj["rooms"][f"!{b64(rng.randbytes(12))}:localhost"] = {"sessions": sessions}
    body = h.dumps(body_obj)
    api = Api(port, d.user.access_token)
    conn = RawConn(port, d.user.access_token)
    uploads = []
    lat = []
    m = None
    try:
        for k in range(a.backup_uploads):
            auth = {"public_key": b64(rng.randbytes(32)), "signatures": {}}
            version = (
                await api.call(
                    "POST",
                    f"{CS}/room_keys/version",
                    {"algorithm": BACKUP_ALGORITHM, "auth_data": auth},
                )
            )["version"]
            await h.wait_quiet(b, f"key backup PUT {k + 1}")
            before = b.target.db_size()
            m1 = h.Meter(b, f"key backup PUT {k + 1}")
            t0 = time.perf_counter()
            status, resp = await conn.request("PUT", f"{CS}/room_keys/keys?version={version}", body)
            dt = time.perf_counter() - t0
            res = m1.finish([dt], 1, [] if status == 200 else [f"{status} {resp[:300]!r}"])
            if status != 200:
                raise h.BenchError(f"key backup PUT: {status} {resp[:300]!r}")
            count = json.loads(resp).get("count")
            if count != n:
                b.error(f"key backup PUT: count {count}, expected {n}")
            after = b.target.db_size()
            lat.append(dt)
            uploads.append(
                {
                    "version": version,
                    "seconds": round(dt, 3),
                    "server_cpu_ms": res["server_cpu_ms"],
                    "db_before": before,
                    "db_after": after,
                    "db_growth_bytes": after["logical_bytes"] - before["logical_bytes"],
                    "files_growth_bytes": (after["file_bytes"] + after["wal_bytes"])
                    - (before["file_bytes"] + before["wal_bytes"]),
                    "foreign_load_server_cpu": res.get("foreign_load_server_cpu"),
                    "foreign_load_client_cpu": res.get("foreign_load_client_cpu"),
                }
            )
            h.log(
                f"{b.target.kind}: backup PUT {k + 1}: {dt * 1000:.0f} ms,"
                f" CPU {res['server_cpu_ms']:.0f} ms,"
                f" DB +{uploads[-1]['db_growth_bytes'] / 1e6:.2f} MB"
            )
    finally:
        await api.aclose()
        await conn.aclose()
    summary = h.summarize(lat)
    cpu = [u["server_cpu_ms"] for u in uploads]
    summary.update(
        {
            "requests": len(uploads),
            "server_cpu_ms_per_req": round(sum(cpu) / len(cpu), 1) if cpu else None,
            "foreign_load_server_cpu": max((u["foreign_load_server_cpu"] or 0) for u in uploads),
            "foreign_load_client_cpu": max((u["foreign_load_client_cpu"] or 0) for u in uploads),
        }
    )
    del m
    growth = [u["db_growth_bytes"] for u in uploads]
    return {
        "sessions": n,
        "body_bytes": len(body),
        "uploads": uploads,
        "summary": summary,
        "db_growth_bytes_median": sorted(growth)[len(growth) // 2],
    }


def rows(r: dict[str, Any]) -> list[Row]:
    a = next(iter(r["servers"].values()), {}).get("shape", {})
    qs = f"{a.get('users', '?')}x{a.get('devices', '?')}"
    cl = f"{a.get('claim_devices', '?')} devices"
    sessions = f"{a.get('sessions', 0):,} sessions"

    def ph(key: str, field: str) -> Any:
        return lambda res: res["phases"][res[key]][field]

    def upload(field: str) -> Any:
        return lambda res: res["backup"]["summary"][field]

    return [
        Row(f"/keys/query {qs} p50 ms", ph("query_phase", "p50_ms")),
        Row(f"/keys/query {qs} p95 ms", ph("query_phase", "p95_ms")),
        Row(f"/keys/query {qs} server CPU ms", ph("query_phase", "server_cpu_ms_per_req"), nd=2),
        Row(
            "/keys/query response KiB",
            lambda res: res["phases"][res["query_phase"]]["response_bytes"] / 1024,
            nd=0,
        ),
        Row(f"/keys/claim {cl} p50 ms", ph("claim_phase", "p50_ms")),
        Row(f"/keys/claim {cl} p95 ms", ph("claim_phase", "p95_ms")),
        Row(
            "/keys/claim 20 devices server CPU ms", ph("claim_phase", "server_cpu_ms_per_req"), nd=2
        ),
        Row(f"key backup PUT, {sessions}: median ms", upload("p50_ms"), nd=0),
        Row(f"key backup PUT, {sessions}: max ms", upload("max_ms"), nd=0),
        Row("key backup PUT: server CPU ms", upload("server_cpu_ms_per_req"), nd=0),
        Row(
            "key backup PUT: DB growth MB (median)",
            lambda res: res["backup"]["db_growth_bytes_median"] / 1e6,
            nd=2,
        ),
        Row(
            "key backup PUT: DB bytes per session",
            lambda res: res["backup"]["db_growth_bytes_median"] / res["backup"]["sessions"],
            nd=0,
        ),
    ]


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    return []  # issue 5 asks for the figures beside Synapse's; it sets no thresholds


if __name__ == "__main__":
    sys.exit(h.main_for("bench_e2ee", __doc__ or "", add_args, workload, rows, goals, defaults))
