#!/usr/bin/env python3
"""bench_fanout: one message into a big room wakes every member's long-poll (issue 12's
big-room fan-out), measured with a client that costs a few µs per request.

    python bench/bench_fanout.py [--servers dendrite,synapse] [--clients 100] [--json OUT]
    python bench/bench_fanout.py --report RUN.json

Why a second tool beside mxbench's `load`: mxbench's simulated clients are httpx clients
on one asyncio loop, ~0.6 ms of client CPU per request (bench/README.md); in a fan-out
burst of 100 responses the client's own core may set the pace, so the load figures are an
upper bound of the server's share.  Here each long-poll is a raw HTTP/1.1 connection
(harness.RawConn, ~0.04 ms per request) and a response is only searched for a marker, not
decoded, unless its token is needed for the next poll (it always is, so the token is cut
out of the bytes by a small search).

Workload: --members users join one room; --clients of them long-poll (--sss-share on
Element X's room-list sliding sync request, timeline_limit 1 and the 17 required_state
pairs; the rest on legacy /sync with the filter timeline.limit=10, as mxbench does); two
other users share a DM, one of them long-polling too.  Then --messages times, --interval s
apart: a member who is not polling sends into the big room, and 1 ms later the DM partner
sends into the DM.  Figures, per (message, recipient): from the start of the PUT until
that recipient's long-poll response holding the message has been read; "last recipient"
per message; the DM's delivery during the fan-out (issue 12: a message into a big room
must never delay a DM); the sends; server CPU per big-room message (everything: the send,
every wake-up and every re-poll).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
from bench_sliding_sync import PATH as SSS_PATH
from bench_sliding_sync import Bodies
from harness import CS, Api, Bench, RawConn, Row, User, q

GOAL_P95_MS = {100: 50.0, 200: 100.0}
LEGACY_FILTER = q(json.dumps({"room": {"timeline": {"limit": 10}}}, separators=(",", ":")))


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", type=int, help="members of the big room (200; quick 30)")
    p.add_argument("--clients", type=int, help="members long-polling (100; quick 20)")
    p.add_argument("--sss-share", type=float, default=0.7, help="share on sliding sync (0.7)")
    p.add_argument("--messages", type=int, help="big-room messages measured (30; quick 5)")
    p.add_argument("--interval", type=float, default=1.0, help="s between messages (1.0)")
    p.add_argument("--no-dm", action="store_true", help="no DM message beside each message")


def defaults(a: argparse.Namespace) -> None:
    for name, full, quick in [("members", 200, 30), ("clients", 100, 20), ("messages", 30, 5)]:
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    if a.clients > a.members - 1:
        raise SystemExit("--clients must leave at least one member who does not poll")


def token_after(body: bytes, key: bytes) -> str:
    """The string value of the first `"key":"..."` in a JSON body (next_batch, pos)."""
    i = body.find(b'"' + key + b'":')
    if i < 0:
        raise h.BenchError(f"no {key.decode()} in {body[:200]!r}")
    i = body.index(b'"', i + len(key) + 3) + 1
    return body[i : body.index(b'"', i)].decode()


class Poller:
    """One long-polling client: records when each marker first arrives."""

    def __init__(self, port: int, user: User, kind: str, bodies: Bodies) -> None:
        self.conn = RawConn(port, user.access_token)
        self.kind = kind
        self.bodies = bodies
        self.token: str | None = None
        self.arrivals: dict[bytes, float] = {}
        self.responses = 0
        self.watch: list[bytes] = []

    async def once(self, timeout_ms: int) -> bytes:
        if self.kind == "sss":
            p = f"{SSS_PATH}?timeout={timeout_ms}"
            if self.token is not None:
                p += f"&pos={q(self.token)}"
            status, body = await self.conn.request("POST", p, self.bodies.room_list())
            key = b"pos"
        else:
            p = f"{CS}/sync?filter={LEGACY_FILTER}&timeout={timeout_ms}"
            if self.token is not None:
                p += f"&since={q(self.token)}"
            status, body = await self.conn.request("GET", p)
            key = b"next_batch"
        if status != 200:
            raise h.BenchError(f"{self.kind} poll answered {status}: {body[:300]!r}")
        self.token = token_after(body, key)
        return body

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            body = await self.once(30000)
            t = time.perf_counter()
            self.responses += 1
            for marker in self.watch:
                if marker not in self.arrivals and marker in body:
                    self.arrivals[marker] = t


async def timed_put(conn: RawConn, path: str, body: bytes) -> float:
    """A send's latency (s); anything but 200 ends the run."""
    t = time.perf_counter()
    status, data = await conn.request("PUT", path, body)
    if status != 200:
        raise h.BenchError(f"send answered {status}: {data[:300]!r}")
    return time.perf_counter() - t


async def seed(b: Bench, run: str) -> tuple[list[User], str, str]:
    a, port = b.args, b.port
    users = await h.register_many(port, "fan", a.members + 2)
    owner = Api(port, users[0].access_token)
    room = (
        await owner.call(
            "POST", f"{CS}/createRoom", {"preset": "public_chat", "name": "big fan-out room"}
        )
    )["room_id"]
    await owner.aclose()

    async def join(u: User) -> None:
        api = Api(port, u.access_token)
        await api.call("POST", f"{CS}/join/{q(room)}", {})
        await api.aclose()

    await h.bounded([join(u) for u in users[1 : a.members]], 8, f"join {a.members - 1}")
    dm_a, dm_b = users[a.members], users[a.members + 1]
    api = Api(port, dm_a.access_token)
    dm = (
        await api.call(
            "POST",
            f"{CS}/createRoom",
            {"preset": "trusted_private_chat", "is_direct": True, "invite": [dm_b.user_id]},
        )
    )["room_id"]
    await api.aclose()
    api = Api(port, dm_b.access_token)
    await api.call("POST", f"{CS}/join/{q(dm)}", {})
    await api.aclose()
    return users, room, dm


async def workload(b: Bench) -> dict[str, Any]:
    a, port = b.args, b.port
    run = f"r{int(time.time())}"
    t0 = time.perf_counter()
    users, room, dm = await seed(b, run)
    seed_s = time.perf_counter() - t0
    n_sss = round(a.clients * a.sss_share)
    bodies = Bodies()
    # members[0] sends; members[1..clients] poll; the DM: users[-2] sends, users[-1] polls
    pollers = [
        Poller(port, u, "sss" if i < n_sss else "legacy", bodies)
        for i, u in enumerate(users[1 : a.clients + 1])
    ]
    dm_poller = Poller(port, users[-1], "legacy", bodies)
    everyone = [*pollers, dm_poller]
    await h.bounded([p.once(0) for p in everyone], 8, "initial syncs")
    sender = RawConn(port, users[0].access_token)
    dm_sender = RawConn(port, users[-2].access_token)
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(p.run(stop)) for p in everyone]
    await asyncio.sleep(1.0)
    waited = await h.wait_quiet(b, "fan-out")
    m = h.Meter(b, "fan-out")
    sends: list[tuple[bytes, float, float]] = []  # marker, t0, send latency
    dm_sends: list[tuple[bytes, float, float]] = []

    for i in range(a.messages):
        marker = f"{run}-big-{i}".encode()
        dm_marker = f"{run}-dm-{i}".encode()
        for p in pollers:
            p.watch.append(marker)
        dm_poller.watch.append(dm_marker)
        t_big = time.perf_counter()
        big = asyncio.ensure_future(
            timed_put(
                sender,
                f"{CS}/rooms/{q(room)}/send/m.room.message/{run}b{i}",
                h.dumps({"msgtype": "m.text", "body": marker.decode()}),
            )
        )
        if not a.no_dm:
            await asyncio.sleep(0.001)
            t_dm = time.perf_counter()
            small = await timed_put(
                dm_sender,
                f"{CS}/rooms/{q(dm)}/send/m.room.message/{run}d{i}",
                h.dumps({"msgtype": "m.text", "body": dm_marker.decode()}),
            )
            dm_sends.append((dm_marker, t_dm, small))
        sends.append((marker, t_big, await big))
        await asyncio.sleep(a.interval)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and any(  # noqa: ASYNC110 - polls the pollers' records
        mk not in p.arrivals for p in pollers for mk, _, _ in sends
    ):
        await asyncio.sleep(0.05)
    lat: list[float] = []
    last: list[float] = []
    first: list[float] = []
    by_kind: dict[str, list[float]] = {"sss": [], "legacy": []}
    missing = 0
    per_message: list[list[float | None]] = []  # ms: first, last recipient, send, per message
    for mk, t_sent, sent in sends:
        per = []
        for p in pollers:
            t = p.arrivals.get(mk)
            if t is None:
                missing += 1
                continue
            per.append(t - t_sent)
            by_kind[p.kind].append(t - t_sent)
        lat.extend(per)
        if per:
            last.append(max(per))
            first.append(min(per))
        per_message.append(
            [
                round(x * 1000, 2) if x is not None else None
                for x in (min(per, default=None), max(per, default=None), sent)
            ]
        )
    dm_lat = [dm_poller.arrivals[mk] - t for mk, t, _ in dm_sends if mk in dm_poller.arrivals]
    missing += len(dm_sends) - len(dm_lat)
    res = m.finish(lat, a.messages)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in [sender, dm_sender, *(p.conn for p in everyone)]:
        await c.aclose()
    s = h.summarize(by_kind["sss"])
    g = h.summarize(by_kind["legacy"])
    res.update(
        {
            "waited_for_quiet_s": waited,
            "sss_p95_ms": s.get("p95_ms"),
            "legacy_p95_ms": g.get("p95_ms"),
            "first_recipient": h.summarize(first),
            "last_recipient": h.summarize(last),
            "dm": h.summarize(dm_lat),
            "send_big": h.summarize([x for _, _, x in sends]),
            "send_dm": h.summarize([x for _, _, x in dm_sends]),
            "missing": missing,
            "per_message": per_message,
            "responses": sum(p.responses for p in everyone),
        }
    )
    if missing:
        b.error(f"{missing} deliveries missing")
    h.log(
        f"{b.target.kind}: last recipient p50 {res['last_recipient'].get('p50_ms')} ms,"
        f" DM p95 {res['dm'].get('p95_ms')} ms, send big p50 {res['send_big'].get('p50_ms')} ms"
    )
    return {
        "seed_s": round(seed_s, 1),
        "params": {
            "members": a.members,
            "clients": a.clients,
            "sss_clients": n_sss,
            "messages": a.messages,
            "interval_s": a.interval,
        },
        "phases": {"fan-out": res},
    }


def rows(r: dict[str, Any]) -> list[Row]:
    def ph(key: str, sub: str | None = None) -> Any:
        def get(res: dict[str, Any]) -> Any:
            v = res["phases"]["fan-out"].get(key)  # None: an older report without it
            return v[sub] if sub and v is not None else v

        return get

    return [
        Row("delivery p50 ms", ph("p50_ms"), nd=1),
        Row("delivery p95 ms", ph("p95_ms"), nd=1),
        Row("delivery p99 ms", ph("p99_ms"), nd=1),
        Row("delivery p95, sliding sync ms", ph("sss_p95_ms"), nd=1),
        Row("delivery p95, legacy /sync ms", ph("legacy_p95_ms"), nd=1),
        Row("first recipient p50 ms", ph("first_recipient", "p50_ms"), nd=1),
        Row("last recipient p50 ms", ph("last_recipient", "p50_ms"), nd=1),
        Row("last recipient p95 ms", ph("last_recipient", "p95_ms"), nd=1),
        Row("DM during the fan-out p50 ms", ph("dm", "p50_ms"), nd=1),
        Row("DM during the fan-out p95 ms", ph("dm", "p95_ms"), nd=1),
        Row("send into the big room p50 ms", ph("send_big", "p50_ms"), nd=1),
        Row("send into the DM p95 ms", ph("send_dm", "p95_ms"), nd=1),
        Row("server CPU ms per big-room message", ph("server_cpu_ms_per_req"), nd=1),
        Row("server writes KiB per big-room message", ph("server_write_kib_per_req"), nd=1),
        Row("missing deliveries", ph("missing"), nd=0),
    ]


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    d = r["servers"].get("dendrite")
    if not d or "phases" not in d:
        return []
    f = d["phases"]["fan-out"]
    clients = d["params"]["clients"]
    goal = GOAL_P95_MS.get(clients)
    out = []
    if goal is not None:
        out.append(
            {
                "goal": f"fan-out delivery p95 <= {goal:.0f} ms at {clients} clients",
                "value": f"{f['p95_ms']:.1f} ms",
                "met": f["p95_ms"] <= goal,
            }
        )
    out.append(
        {
            "goal": "zero missing deliveries",
            "value": str(f["missing"]),
            "met": f["missing"] == 0,
        }
    )
    return out


if __name__ == "__main__":
    sys.exit(h.main_for("bench_fanout", __doc__ or "", add_args, workload, rows, goals, defaults))
