#!/usr/bin/env python3
"""client_floor: how fast mxbench's `load` client can take in a fan-out burst when the
server costs nothing: the lowest delivery latency mxbench can report for a message that
wakes N long-polls at once, whatever the server.

    python bench/client_floor.py [--clients 100,200] [--bursts 12] [--json OUT]

Why: issue 12 judges delivery p95 with mxbench's `load` (../shared/bench/mxbench.py).
Its simulated clients share one Python process and one asyncio loop (httpx, one small
pool per client), so the responses of a burst are read one after another on the
client's core. In `load`, most (message, recipient) pairs come from the three
500-member rooms, whose messages wake every active client at once; the overall p95 is
then about the 90th of 100 answers of such a burst. Here a stand-in server that does no
work answers every waiting long-poll at the same instant, and the figures are the times
at which mxbench's client has read the k-th answer.

The stand-in (`serve`, asyncio streams, pinned to --server-cpu) parks every long-poll;
every --interval seconds, once at least 90 % of the clients wait, it writes all the
answers in one go (realistic bodies: one room with one load message, the headers
dendrite-lite sends) and notes the time. The client (`client`, pinned to --client-cpu)
imports mxbench and runs --clients loops shaped like `LoadRun.sss_client` and
`LoadRun.legacy_client` (the share on legacy /sync is --legacy-share): mxbench's
`Client.req` with a pool of 2 connections per client, Element X's room-list body or the
legacy filter, the timeline walk for load marks, the next poll. mxbench's `load` also
sends, samples and watches its loop meanwhile, so its real floor is a little higher.
Both processes timestamp with perf_counter (CLOCK_MONOTONIC), comparable on one host.

Benchmark tooling only: nothing in the project imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MXBENCH = REPO.parent / "shared" / "bench" / "mxbench.py"
SSS_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
LEGACY_PATH = "/_matrix/client/v3/sync"
ROOM = "!Jq3cW0bUuVZcT3u9mQmLdyTfuHtmD4YQhXfB1lH2mAs"  # the shape of a v12 room ID
LOAD_MARK = "dev.mxbench.load"
EVENT = {
    "type": "m.room.message",
    "sender": "@mxb-u123:localhost",
    "content": {
        "msgtype": "m.text",
        "body": "mxbench load message 17",
        LOAD_MARK: {"run": "abcdefgh", "seq": 17},
    },
    "origin_server_ts": 1764590000000,
    "unsigned": {"age": 3},
    "event_id": "$Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg",
}
SSS_ANSWER = {
    "pos": "s123_4",
    "lists": {"all_rooms": {"count": 8}},
    "rooms": {
        ROOM: {
            "timeline": [EVENT],
            "limited": True,
            "prev_batch": "t1_2",
            "num_live": 1,
            "bump_stamp": 4567,
            "notification_count": 1,
            "highlight_count": 0,
            "joined_count": 500,
            "invited_count": 0,
        }
    },
    "extensions": {"receipts": {"rooms": {}}, "typing": {"rooms": {}}, "account_data": {}},
}
LEGACY_ANSWER = {
    "next_batch": "s99",
    "rooms": {
        "join": {
            ROOM: {
                "timeline": {"events": [EVENT], "limited": False, "prev_batch": "t1"},
                "state": {"events": []},
                "ephemeral": {"events": []},
                "account_data": {"events": []},
                "unread_notifications": {"notification_count": 1, "highlight_count": 0},
                "summary": {},
            }
        }
    },
}
# dendrite-lite's response headers (CORS as the spec asks), so the client parses as much
HEAD = (
    b"HTTP/1.1 200 OK\r\ndate: Tue, 01 Dec 2026 11:05:12 GMT\r\n"
    b"content-type: application/json\r\ncontent-length: %d\r\n"
    b"access-control-allow-origin: *\r\n"
    b"access-control-allow-methods: GET, POST, PUT, DELETE, OPTIONS\r\n"
    b"access-control-allow-headers: X-Requested-With, Content-Type, Authorization, Date\r\n"
    b"access-control-expose-headers: Retry-After\r\n\r\n"
)


def answer(body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return HEAD % len(data) + data


async def serve(port: int, clients: int, interval: float) -> None:
    """The stand-in server: parks long-polls (timeout other than 0), answers them all at
    once; prints one line per burst: `burst <perf_counter> <answers>`."""
    sss, legacy = answer(SSS_ANSWER), answer(LEGACY_ANSWER)
    waiting: list[tuple[asyncio.StreamWriter, bytes, asyncio.Future[None]]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            data = legacy if head.startswith(b"GET") else sss
            if b"timeout=0" in head.split(b"\r\n", 1)[0]:
                writer.write(data)
                continue
            parked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiting.append((writer, data, parked))
            await parked

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    while True:
        await asyncio.sleep(interval)
        if len(waiting) < 0.9 * clients:
            continue
        burst = waiting[:]
        waiting.clear()
        t = time.perf_counter()
        for writer, data, parked in burst:
            writer.write(data)
            parked.set_result(None)
        print(f"burst {t!r} {len(burst)}", flush=True)
    await server.serve_forever()


def load_mxbench(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("mxbench", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"client_floor: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def client(port: int, clients: int, legacy_share: float, seconds: float, mx: Path) -> None:
    """mxbench's load clients against the stand-in; prints the perf_counter of every
    answer read (as LoadRun takes it: Client.req's stamps["t1"]) as one JSON list."""
    mxbench = load_mxbench(mx)
    import httpx

    ssl_ctx = httpx.create_ssl_context()
    arrivals: list[float] = []
    n_legacy = round(clients * legacy_share)
    # The room-list body exactly as mxbench's load sends it (its Ctx.sss_body, with
    # its default --sss-profile), so the floor follows any change to the yardstick.
    ctx = mxbench.Ctx(
        argparse.Namespace(rng_seed=0, sss_profile="elementx"),
        {"users": [{}], "rooms": []},
        None,
        SSS_PATH,
    )

    def observe(events: list[Any]) -> int:
        found = 0
        for ev in events:
            content = ev.get("content") if isinstance(ev, dict) else None
            mark = content.get(LOAD_MARK) if isinstance(content, dict) else None
            found += isinstance(mark, dict)
        return found

    async def one(ci: int) -> None:
        c = mxbench.Client(f"http://127.0.0.1:{port}", max_conns=2, verify=ssl_ctx)
        legacy = ci < n_legacy
        token = f"token{ci}"
        while True:
            st: dict[str, float] = {}
            if legacy:
                data, _, _ = await c.req(
                    "GET",
                    LEGACY_PATH,
                    token,
                    None,
                    {
                        "filter": '{"room" :{ "timeline":{"limit": 10}}}',
                        "timeout": 30000,
                        "since": "s",
                    },
                    stamps=st,
                )
                for r in ((data.get("rooms") or {}).get("join") or {}).values():
                    observe((r.get("timeline") or {}).get("events") or [])
            else:
                data, _, _ = await c.req(
                    "POST",
                    SSS_PATH,
                    token,
                    ctx.sss_body(),
                    {"timeout": 30000, "pos": "p"},
                    stamps=st,
                )
                for r in (data.get("rooms") or {}).values():
                    observe(r.get("timeline") or [])
            arrivals.append(st["t1"])

    tasks = [asyncio.ensure_future(one(ci)) for ci in range(clients)]
    await asyncio.sleep(seconds)
    print(json.dumps(arrivals), flush=True)
    for task in tasks:
        task.cancel()
    os._exit(0)


def kth(values: list[float], k: int) -> float:
    return values[min(len(values), max(1, k)) - 1]


def measure(a: argparse.Namespace, clients: int, port: int) -> dict[str, Any]:
    me = [sys.executable, str(Path(__file__).resolve())]
    server = subprocess.Popen(
        [
            *me,
            "serve",
            "--port",
            str(port),
            "--clients",
            str(clients),
            "--interval",
            str(a.interval),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if a.server_cpu >= 0:
            os.sched_setaffinity(server.pid, {a.server_cpu})
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("client_floor: the stand-in server did not start")
        seconds = a.interval * (a.bursts + 1) + a.interval / 2
        out = subprocess.run(
            [
                *(["taskset", "-c", str(a.client_cpu)] if a.client_cpu >= 0 else []),
                *me,
                "client",
                "--port",
                str(port),
                "--clients",
                str(clients),
                "--legacy-share",
                str(a.legacy_share),
                "--seconds",
                str(seconds),
                "--mxbench",
                str(a.mxbench),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        server.terminate()
        lines, _ = server.communicate(timeout=10)
    arrivals = sorted(json.loads(out.stdout.strip().splitlines()[-1]))
    bursts = [(float(t), int(n)) for _, t, n in (ln.split() for ln in lines.splitlines() if ln)]
    rows = []
    pooled: list[float] = []
    for t, n in bursts[1:]:  # the first burst answers polls that started at different times
        got = sorted((x - t) * 1000 for x in arrivals if t <= x < t + a.interval * 0.9)
        if len(got) < n:
            continue
        pooled.extend(got)
        rows.append(
            {
                "answers": n,
                "first_ms": got[0],
                "p50_ms": kth(got, round(n * 0.50)),
                "p90_ms": kth(got, round(n * 0.90)),
                "p95_ms": kth(got, round(n * 0.95)),
                "last_ms": got[-1],
                "ms_per_answer": (got[-1] - got[0]) / max(1, n - 1),
            }
        )
    if not rows:
        raise SystemExit("client_floor: no complete burst was read")
    pooled.sort()

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return {
        "clients": clients,
        "bursts": rows,
        "median": {k: median(k) for k in rows[0] if k != "answers"},
        "pooled_p90_ms": kth(pooled, round(len(pooled) * 0.90)),
        "pooled_p95_ms": kth(pooled, round(len(pooled) * 0.95)),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("mode", nargs="?", default="run", choices=["run", "serve", "client"])
    p.add_argument("--clients", default="100,200", help="burst sizes, comma-separated (100,200)")
    p.add_argument("--bursts", type=int, default=12, help="bursts measured per size (12)")
    p.add_argument("--interval", type=float, default=1.0, help="s between bursts (1.0)")
    p.add_argument("--legacy-share", type=float, default=0.3, help="share on legacy /sync (0.3)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU of the stand-in (0; -1: none)")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU of mxbench's client (1)")
    p.add_argument("--mxbench", type=Path, default=DEFAULT_MXBENCH, help="mxbench.py")
    p.add_argument("--port", type=int, default=18555)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--json", type=Path, help="write the figures here")
    a = p.parse_args()
    if a.mode == "serve":
        asyncio.run(serve(a.port, int(a.clients), a.interval))
        return
    if a.mode == "client":
        asyncio.run(client(a.port, int(a.clients), a.legacy_share, a.seconds, a.mxbench))
        return
    if not a.mxbench.is_file():
        raise SystemExit(f"client_floor: no mxbench at {a.mxbench} (--mxbench PATH)")
    results = [measure(a, int(n), a.port + i) for i, n in enumerate(a.clients.split(","))]
    print("mxbench load's client, answers read after a stand-in server wrote all at once (ms)")
    print("clients  bursts  first   50th   90th   95th   last  ms/answer  pooled p95")
    for r in results:
        m = r["median"]
        print(
            f"{r['clients']:7d}  {len(r['bursts']):6d}  {m['first_ms']:5.1f}  {m['p50_ms']:5.1f}"
            f"  {m['p90_ms']:5.1f}  {m['p95_ms']:5.1f}  {m['last_ms']:5.1f}"
            f"  {m['ms_per_answer']:9.3f}"
            f"  {r['pooled_p95_ms']:10.1f}"
        )
    print("(medians over the bursts; the k-th answer read, in ms after the stand-in wrote them)")
    if a.json:
        a.json.write_text(json.dumps({"argv": sys.argv, "results": results}, indent=1))


if __name__ == "__main__":
    main()
