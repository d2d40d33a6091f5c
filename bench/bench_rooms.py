#!/usr/bin/env python3
"""bench_rooms: sending, history paging and room creation (issue 3), dendrite-lite beside
Synapse 1.163.2 on SQLite, in the same run.

    python bench/bench_rooms.py [--servers dendrite,synapse] [--quick] [--json OUT]
    python bench/bench_rooms.py --report RUN1.json RUN2.json   # markdown for RESULTS.md

For each server in turn (fresh data directory, server pinned to --server-cpu, this client
on --client-cpu, everything on 127.0.0.1):

  setup     11 users (m.login.dummy); room S (public_chat) that all of them join; one own
            room per sender.
  createRoom     --create-rooms sequential POST /createRoom (preset private_chat, a name
                 and a topic) by one user: latency and server CPU per room.
  send, 1 sender PUT /rooms/S/send/m.room.message/{txn} on one connection, one at a time:
                 --send-count requests or --send-seconds, whichever ends first.
  send, 10 senders, one room   10 users, each on its own connection, all into room S,
                 closed loop for --send-seconds: messages/s, latency (includes queueing),
                 server CPU per message.
  send, 10 senders, own rooms  the same, each user into its own room.
  /messages @D   room B is filled through the API (10 senders in a closed loop; the rate is
                 reported as "seeding") until it holds D messages, for each D of --depths
                 (Synapse: --synapse-depths).  Every --token-every (20) messages the sender
                 asks for the newest event (/messages?dir=b&limit=1) and keeps the `end`
                 token.  Then up to --messages-samples sequential GET
                 /messages?dir=b&limit=20&from=T (at most --messages-seconds) are timed, T
                 each time a different one of those tokens that has at least --min-depth
                 (1000) newer messages above it: a page nobody has read since it was
                 written, as when a user scrolls back through old history.  Then 200 more
                 over just 20 pages, again and again (the warm-cache case).  Each answer
                 must hold 20 events.

Latency: client wall time from writing the request to having read the whole body.  Server
CPU: utime+stime of the server process (all threads) over the phase / requests.  "other
load": how busy each pinned CPU was beyond our own processes (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
from harness import CS, Api, Bench, RawConn, Row, User, q

GOAL_SEND_P95_MS = 8.0
GOAL_SEND_CPU_MS = 2.0
GOAL_THROUGHPUT_X = 5.0
GOAL_MESSAGES_P95_MS = 4.0
SENDERS = 10


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--create-rooms", type=int, help="createRoom samples (100; quick 10)")
    p.add_argument("--send-count", type=int, help="max sequential sends (2000; quick 200)")
    p.add_argument("--send-seconds", type=float, help="duration of each send phase (20; quick 3)")
    p.add_argument(
        "--depths",
        type=lambda s: [int(x) for x in s.split(",")],
        help="room sizes at which /messages is timed for dendrite-lite (20000,100000; quick 2000)",
    )
    p.add_argument(
        "--synapse-depths",
        type=lambda s: [int(x) for x in s.split(",")],
        help="the same for Synapse (default: --depths; 20000 if seeding 100k is too slow)",
    )
    p.add_argument(
        "--max-seed-minutes",
        type=float,
        default=30.0,
        help="stop filling the deep room after this long, and measure at the depth reached (30)",
    )
    p.add_argument(
        "--messages-samples", type=int, help="timed /messages requests (1000; quick 100)"
    )
    p.add_argument(
        "--min-depth", type=int, help="`from` tokens at least this deep (1000; quick 200)"
    )
    p.add_argument("--seed-connections", type=int, default=SENDERS, help="senders filling room B")
    p.add_argument(
        "--messages-seconds",
        type=float,
        default=180.0,
        help="at most this long per /messages phase (180): Synapse pages slowly in big rooms",
    )
    p.add_argument(
        "--token-every", type=int, default=20, help="keep a /messages token every N messages (20)"
    )


def defaults(a: argparse.Namespace) -> None:
    for name, full, quick in [
        ("create_rooms", 100, 10),
        ("send_count", 2000, 200),
        ("send_seconds", 20.0, 3.0),
        ("depths", [20000, 100000], [2000]),
        ("messages_samples", 1000, 100),
        ("min_depth", 1000, 200),
    ]:
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    if a.synapse_depths is None:
        a.synapse_depths = a.depths


def message(i: int, k: int) -> bytes:
    return h.dumps({"msgtype": "m.text", "body": f"bench message {k} from sender {i}"})


def send_path(room: str, txn: str) -> str:
    return f"{CS}/rooms/{q(room)}/send/m.room.message/{txn}"


def has_event_id(status: int, body: bytes) -> str | None:
    return None if b'"event_id"' in body else f"no event_id in {body[:200]!r}"


async def create_room(u: User, port: int, body: dict[str, Any]) -> str:
    api = Api(port, u.access_token)
    try:
        d = await api.call("POST", f"{CS}/createRoom", body)
        return str(d["room_id"])
    finally:
        await api.aclose()


async def join(u: User, port: int, room: str) -> None:
    api = Api(port, u.access_token)
    try:
        await api.call("POST", f"{CS}/join/{q(room)}", {})
    finally:
        await api.aclose()


async def workload(b: Bench) -> dict[str, Any]:
    a, port = b.args, b.port
    phases: dict[str, Any] = {}
    out: dict[str, Any] = {"phases": phases}
    run = "".join(random.choices("abcdefghijkmnpqrstuvwxyz", k=6))
    users = await h.register_many(port, "rooms", SENDERS + 1)
    owner, senders = users[0], users[1:]

    out["settle"] = [await h.settle(b)]

    # -- createRoom --------------------------------------------------------------------------
    c = RawConn(port, owner.access_token)

    async def create(conn: RawConn, i: int, k: int) -> tuple[int, bytes]:
        body = {"preset": "private_chat", "name": f"Bench room {k}", "topic": f"topic {k}"}
        return await conn.request("POST", f"{CS}/createRoom", h.dumps(body))

    phases["createRoom"] = await h.measure(
        b,
        "createRoom",
        [c],
        create,
        count=a.create_rooms,
        warmup=3,
        check=lambda s, body: None if b'"room_id"' in body else f"no room_id: {body[:200]!r}",
    )
    await c.aclose()

    # -- rooms for the send phases -------------------------------------------------------------
    room_s = await create_room(owner, port, {"preset": "public_chat", "name": "Send room"})
    await h.bounded([join(u, port, room_s) for u in senders], 4)
    own = await h.bounded(
        [
            create_room(u, port, {"preset": "private_chat", "name": f"own {i}"})
            for i, u in enumerate(senders)
        ],
        4,
    )
    out["settle"].append(await h.settle(b))

    c = RawConn(port, owner.access_token)

    async def send_one(conn: RawConn, i: int, k: int) -> tuple[int, bytes]:
        return await conn.request("PUT", send_path(room_s, f"{run}s1t{k}"), message(0, k))

    phases["send, 1 sender"] = await h.measure(
        b,
        "send, 1 sender",
        [c],
        send_one,
        count=a.send_count,
        seconds=a.send_seconds,
        warmup=20,
        check=has_event_id,
    )
    await c.aclose()

    conns = [RawConn(port, u.access_token) for u in senders]

    async def send_room(conn: RawConn, i: int, k: int) -> tuple[int, bytes]:
        return await conn.request("PUT", send_path(room_s, f"{run}s10t{k}"), message(i, k))

    phases["send, 10 senders, one room"] = await h.measure(
        b,
        "send, 10 senders, one room",
        conns,
        send_room,
        seconds=a.send_seconds,
        warmup=3,
        check=has_event_id,
    )

    async def send_own(conn: RawConn, i: int, k: int) -> tuple[int, bytes]:
        return await conn.request("PUT", send_path(own[i], f"{run}own{k}"), message(i, k))

    phases["send, 10 senders, own rooms"] = await h.measure(
        b,
        "send, 10 senders, own rooms",
        conns,
        send_own,
        seconds=a.send_seconds,
        warmup=3,
        check=has_event_id,
    )
    for c in conns:
        await c.aclose()

    # -- /messages in a deep room --------------------------------------------------------------
    room_b = await create_room(owner, port, {"preset": "public_chat", "name": "Deep room"})
    await h.bounded([join(u, port, room_b) for u in senders], 4)
    depths = a.synapse_depths if b.target.kind == "synapse" else a.depths
    seeded = 0
    seeds: list[dict[str, Any]] = []
    tokens: list[tuple[int, str]] = []  # (messages below the token, token)
    conns = [
        RawConn(port, senders[i % len(senders)].access_token) for i in range(a.seed_connections)
    ]
    seed_deadline = time.perf_counter() + a.max_seed_minutes * 60
    for want in depths:
        if seeded >= want or time.perf_counter() >= seed_deadline:
            break
        seeds.append(
            await seed_room(
                b, conns, room_b, seeded, want, run, seed_deadline, tokens, a.token_every
            )
        )
        depth = seeded = seeds[-1]["to"]
        if depth < want:
            b.warn(f"seeding stopped after {a.max_seed_minutes} min at {depth} of {want} messages")
        out["settle"].append(await h.settle(b))
        # deep (at least --min-depth newer messages above), with a full page and more below
        deep = [t for below, t in tokens if below >= 100 and depth - below >= a.min_depth]
        if len(deep) < 40:
            raise h.BenchError(f"only {len(deep)} /messages tokens deeper than {a.min_depth}")
        random.Random(42).shuffle(deep)
        warm_tokens, cold_tokens = deep[:20], deep[20:]
        c = RawConn(port, owner.access_token)

        def page_path(t: str) -> str:
            return f"{CS}/rooms/{q(room_b)}/messages?dir=b&limit=20&from={q(t)}"

        async def cold(
            conn: RawConn, i: int, k: int, toks: list[str] = cold_tokens
        ) -> tuple[int, bytes]:
            # each sample a page nobody has read since it was written (while tokens last)
            t = toks[k % len(toks)] if k >= 0 else toks[-1 - (-1 - k) % len(toks)]
            return await conn.request("GET", page_path(t))

        def full_page(status: int, body: bytes) -> str | None:
            n = len(json.loads(body).get("chunk") or [])
            return None if n == 20 else f"{n} events in a 20-event page"

        name = f"/messages @{depth}"
        phases[name] = await h.measure(
            b,
            name,
            [c],
            cold,
            count=min(a.messages_samples, len(cold_tokens) - 10),
            seconds=a.messages_seconds,
            warmup=5,
            check=full_page,
        )
        phases[name]["tokens"] = len(cold_tokens)

        async def warm(
            conn: RawConn, i: int, k: int, toks: list[str] = warm_tokens
        ) -> tuple[int, bytes]:
            return await conn.request("GET", page_path(toks[k % len(toks)]))

        name = f"/messages @{depth}, same 20 pages again and again"
        phases[name] = await h.measure(
            b, name, [c], warm, count=200, seconds=a.messages_seconds, warmup=20, check=full_page
        )
        await c.aclose()
    for c in conns:
        await c.aclose()
    out["seed"] = seeds
    out["depths"] = [s["to"] for s in seeds]
    return out


async def seed_room(
    b: Bench,
    conns: list[RawConn],
    room: str,
    have: int,
    want: int,
    run: str,
    deadline: float,
    tokens: list[tuple[int, str]],
    token_every: int,
) -> dict[str, Any]:
    """Fill `room` up to `want` messages through the API, closed loop on every connection,
    or until `deadline` (perf_counter).  Every `token_every` messages, the sender asks for
    the newest event (/messages?dir=b&limit=1) and keeps the `end` token: later, when the
    room has grown, it points deep into the room, at a page nobody has read since (a walk
    back through the room to collect tokens would read, and warm caches for, every page)."""
    todo = list(range(have, want))
    todo.reverse()
    errors: list[str] = []
    t0 = time.perf_counter()
    p0 = b.target.proc.read()  # type: ignore[union-attr]
    last = [t0]
    sent = [have]

    async def worker(i: int, conn: RawConn) -> None:
        while todo and len(errors) < 20 and time.perf_counter() < deadline:
            k = todo.pop()
            status, body = await asyncio.wait_for(
                conn.request("PUT", send_path(room, f"{run}seed{k}"), message(i, k)), 300
            )
            if status != 200:
                errors.append(f"{status} {body[:200]!r}")
            sent[0] += 1
            if k % token_every == 0:
                below = sent[0]  # messages sent so far (all of them are below the token)
                status, body = await asyncio.wait_for(
                    conn.request("GET", f"{CS}/rooms/{q(room)}/messages?dir=b&limit=1"), 300
                )
                if status != 200:
                    errors.append(f"{status} {body[:200]!r}")
                else:
                    end = json.loads(body).get("end")
                    if end:
                        tokens.append((below, end))
            now = time.perf_counter()
            if now - last[0] > 30:
                last[0] = now
                done = want - have - len(todo)
                log_rate(b, done, want - have, now - t0)

    await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    wall = time.perf_counter() - t0
    if errors:
        raise h.BenchError(f"seeding: {len(errors)} errors, e.g. {errors[0]}")
    p1 = b.target.proc.read()  # type: ignore[union-attr]
    n = want - have - len(todo)
    res = {
        "from": have,
        "to": have + n,
        "seconds": round(wall, 1),
        "messages_per_s": round(n / wall, 1) if wall else None,
        "server_cpu_ms_per_msg": round((p1["cpu_ms"] - p0["cpu_ms"]) / n, 3) if n else None,
        "connections": len(conns),
    }
    rate = res["messages_per_s"]
    h.log(f"{b.target.kind}: seeded {have} -> {res['to']} messages in {wall:.0f} s ({rate}/s)")
    return res


def log_rate(b: Bench, done: int, total: int, wall: float) -> None:
    rate = done / wall if wall else 0
    eta = (total - done) / rate if rate else float("nan")
    h.log(f"  {b.target.kind} seeding: {done}/{total} ({rate:.0f}/s, ~{eta:.0f} s left)")


def rows(r: dict[str, Any]) -> list[h.Row]:
    def ph(name: str, key: str) -> Any:
        return lambda res: res["phases"][name][key]

    out = [
        Row("createRoom p50 ms", ph("createRoom", "p50_ms")),
        Row("createRoom p95 ms", ph("createRoom", "p95_ms")),
        Row("createRoom server CPU ms", ph("createRoom", "server_cpu_ms_per_req")),
    ]
    for name in ("send, 1 sender", "send, 10 senders, one room", "send, 10 senders, own rooms"):
        out += [
            Row(f"{name}: p50 ms", ph(name, "p50_ms")),
            Row(f"{name}: p95 ms", ph(name, "p95_ms")),
            Row(f"{name}: p99 ms", ph(name, "p99_ms")),
            Row(f"{name}: server CPU ms/message", ph(name, "server_cpu_ms_per_req"), nd=3),
            Row(f"{name}: messages/s", ph(name, "requests_per_s"), "higher", nd=0),
        ]
    depths = sorted({d for res in r["servers"].values() for d in res.get("depths", [])})
    for d in depths:
        name = f"/messages @{d}"
        out += [
            Row(f"/messages, 20 events, {d:,} deep: p50 ms", ph(name, "p50_ms")),
            Row(f"/messages, 20 events, {d:,} deep: p95 ms", ph(name, "p95_ms")),
            Row(
                f"/messages, 20 events, {d:,} deep: server CPU ms",
                ph(name, "server_cpu_ms_per_req"),
                nd=3,
            ),
            Row(
                f"/messages @{d:,}, 20 pages again and again: p50 ms",
                ph(f"{name}, same 20 pages again and again", "p50_ms"),
            ),
            Row(
                f"/messages @{d:,}, 20 pages again and again: p95 ms",
                ph(f"{name}, same 20 pages again and again", "p95_ms"),
            ),
        ]
    out.append(
        Row(
            "seeding the deep room (10 senders): messages/s",
            lambda res: res["seed"][0]["messages_per_s"],
            "higher",
            nd=0,
        )
    )
    return out


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    d = r["servers"].get("dendrite")
    s = r["servers"].get("synapse")
    if not d or "phases" not in d:
        return []
    p = d["phases"]
    s1 = p["send, 1 sender"]
    g = [
        {
            "goal": "send p95 <= 8 ms (1 sender)",
            "value": f"{s1['p95_ms']:.2f} ms",
            "met": s1["p95_ms"] <= GOAL_SEND_P95_MS,
        },
        {
            "goal": "send <= 2 ms server CPU per message (1 sender)",
            "value": f"{s1['server_cpu_ms_per_req']:.2f} ms",
            "met": s1["server_cpu_ms_per_req"] <= GOAL_SEND_CPU_MS,
        },
    ]
    s10 = p["send, 10 senders, one room"]
    g.append(
        {
            "goal": "send <= 2 ms server CPU per message (10 senders, one room)",
            "value": f"{s10['server_cpu_ms_per_req']:.2f} ms",
            "met": s10["server_cpu_ms_per_req"] <= GOAL_SEND_CPU_MS,
        }
    )
    for name in ("send, 10 senders, one room", "send, 10 senders, own rooms"):
        ours = p[name]["requests_per_s"]
        theirs = s["phases"][name]["requests_per_s"] if s and "phases" in s else None
        ratio = ours / theirs if theirs else None
        g.append(
            {
                "goal": f">= 5x Synapse's messages/s ({name.split(', ', 1)[1]})",
                "value": (
                    f"{ours:.0f} vs {theirs:.0f}/s = {ratio:.1f}x"
                    if ratio
                    else f"{ours:.0f}/s (no Synapse)"
                ),
                "met": None if ratio is None else ratio >= GOAL_THROUGHPUT_X,
            }
        )
    for depth in d.get("depths", []):
        m = p[f"/messages @{depth}"]
        g.append(
            {
                "goal": f"/messages p95 <= 4 ms ({depth:,} events deep)",
                "value": f"{m['p95_ms']:.2f} ms",
                "met": m["p95_ms"] <= GOAL_MESSAGES_P95_MS,
            }
        )
    return g


if __name__ == "__main__":
    sys.exit(h.main_for("bench_rooms", __doc__ or "", add_args, workload, rows, goals, defaults))
