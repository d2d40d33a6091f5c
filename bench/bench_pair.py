"""bench_pair: two builds of dendrite-lite side by side, on copies of one seeded database,
measured in alternating short bursts, so that a difference of a few percent shows.

    python bench/bench_pair.py --a REF [--b REF] [--rounds 12] [--json OUT]
    python bench/bench_pair.py --report RUN.json

Why: this machine's speed drifts by 20-50 % within minutes (bench/RESULTS.md, every
session since the seventh), more than most changes to the message path are worth. Runs
of the other benches one after the other, even interleaved, then cannot tell a 5 %
change from the drift. Here both servers run at once, pinned to the same core, and each
round measures A and B within seconds of each other (in the order A B, then B A, and so
on); what is compared is the difference within each round.

Per round and server, `--incremental` sliding sync requests with nothing new (Element X's
room-list request, timeout 0, one connection, back to back), `--sync-incremental` the
same for /sync (filter timeline.limit=10), and `--deliveries` deliveries (a member of a
random room of the main user sends; the main user's sliding sync long-poll returns with
it), each timed from the client and in server CPU: the sum over the server's threads of
the time the kernel ran them (/proc/PID/task/*/schedstat, nanoseconds), per request or per
delivery (the send, the answered long-poll and the next poll).

Seeding: bench_sync's (--rooms rooms of the main user with --messages messages each,
--users users), into server A; then A stops and its data directory is copied for B.
--a and --b: git refs (exported as bench --git-ref does); --b '' (the default) is the
working tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_sliding_sync as sss
import bench_sync
import harness as h
from harness import CS, Bench, DendriteTarget, RawConn, q


def thread_cpu_ns(pid: int) -> int:
    """CPU time of all of a process's threads, in ns (schedstat's first field)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total


class Side:
    """One server with its connections: the main user's poller and the senders."""

    def __init__(self, name: str, target: DendriteTarget, users: list[h.User]) -> None:
        self.name = name
        self.target = target
        self.users = users
        self.bodies = sss.Bodies()
        self.pos: str | None = None
        self.sync_since: str | None = None
        self.conns: dict[int, RawConn] = {}
        # the deliveries' long-poll (its own connection and conn_id), parked between them
        self.poll: asyncio.Future[dict[str, Any]] | None = None
        self.poll_pos: str | None = None

    def conn(self, i: int) -> RawConn:
        """User i's connection; -1: the main user's second one (the deliveries' poll)."""
        if i not in self.conns:
            self.conns[i] = RawConn(self.target.port, self.users[max(i, 0)].access_token)
        return self.conns[i]

    async def aclose(self) -> None:
        if self.poll is not None:
            self.poll.cancel()
        for c in self.conns.values():
            await c.aclose()


async def _post(conn: RawConn, path: str, body: bytes) -> dict[str, Any]:
    status, data = await conn.request("POST", path, body)
    if status != 200:
        raise h.BenchError(f"sliding sync answered {status}: {data[:300]!r}")
    return dict(json.loads(data))


async def _get(conn: RawConn, path: str) -> dict[str, Any]:
    status, data = await conn.request("GET", path)
    if status != 200:
        raise h.BenchError(f"/sync answered {status}: {data[:300]!r}")
    return dict(json.loads(data))


SYNC_FILTER = q('{"room":{"timeline":{"limit":10}}}')


async def prepare(side: Side) -> None:
    main = side.conn(0)
    d = await _post(main, sss.path(None), side.bodies.room_list())
    d = await _post(main, sss.path(d["pos"]), side.bodies.room_list())
    side.pos = d["pos"]
    s = await _get(main, f"{CS}/sync?filter={SYNC_FILTER}&timeout=0")
    side.sync_since = s["next_batch"]


async def _back_to_back(
    side: Side, n: int, one: Callable[[], Awaitable[None]]
) -> tuple[list[float], int]:
    lat = []
    cpu0 = thread_cpu_ns(side.target.pid)
    for _ in range(n):
        t = time.perf_counter()
        await one()
        lat.append(time.perf_counter() - t)
    return lat, thread_cpu_ns(side.target.pid) - cpu0


async def incremental(side: Side, n: int) -> tuple[list[float], int]:
    async def one() -> None:
        d = await _post(side.conn(0), sss.path(side.pos), side.bodies.room_list())
        side.pos = d["pos"]

    return await _back_to_back(side, n, one)


async def sync_incremental(side: Side, n: int) -> tuple[list[float], int]:
    async def one() -> None:
        path = f"{CS}/sync?filter={SYNC_FILTER}&timeout=0&since={side.sync_since}"
        side.sync_since = (await _get(side.conn(0), path))["next_batch"]

    return await _back_to_back(side, n, one)


async def deliveries(
    side: Side, n: int, plan: list[dict[str, Any]], rng: random.Random, run: str, settle_s: float
) -> tuple[list[float], int]:
    """As bench_sliding_sync's delivery phase, on a connection of its own (conn_id
    "deliveries"): the poll is parked before the send, and the next poll, sent after the
    answer, stays parked for the next delivery (also across rounds)."""
    poller = side.conn(-1)

    def body() -> bytes:
        return side.bodies.room_list().replace(b'"room-list"', b'"deliveries"', 1)

    def poll() -> asyncio.Future[dict[str, Any]]:
        return asyncio.ensure_future(_post(poller, sss.path(side.poll_pos, 30000), body()))

    if side.poll is None:
        d = await _post(poller, sss.path(None), body())
        d = await _post(poller, sss.path(d["pos"]), body())
        side.poll_pos = d["pos"]
        side.poll = poll()
    shared = [p for p in plan if p["members"]]
    lat = []
    cpu = 0
    for i in range(n):
        p = rng.choice(shared)
        sender = side.conn(rng.choice(p["members"]))
        await asyncio.sleep(settle_s)
        while side.poll.done():  # something else was new: take it and park again
            side.poll_pos = side.poll.result()["pos"]
            side.poll = poll()
            await asyncio.sleep(settle_s)
        cpu0 = thread_cpu_ns(side.target.pid)
        t0 = time.perf_counter()
        send = asyncio.ensure_future(
            sender.request(
                "PUT",
                f"{CS}/rooms/{q(p['room_id'])}/send/m.room.message/{run}{side.name}{i}",
                h.dumps({"msgtype": "m.text", "body": f"pair sample {i}"}),
            )
        )
        while True:
            d = await side.poll
            t = time.perf_counter()
            side.poll_pos = d["pos"]
            side.poll = poll()  # the next one, as a client sends it: part of the cost
            if p["room_id"] in (d.get("rooms") or {}):
                break
        status, _ = await send
        if status != 200:
            raise h.BenchError(f"send answered {status}")
        lat.append(t - t0)
        await asyncio.sleep(0.02)
        cpu += thread_cpu_ns(side.target.pid) - cpu0
    return lat, cpu


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


async def measure(
    a: argparse.Namespace, sides: list[Side], plan: list[dict[str, Any]], run: str
) -> dict[str, Any]:
    for side in sides:
        await prepare(side)
    rounds: list[dict[str, Any]] = []
    for r in range(a.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        row: dict[str, Any] = {"round": r + 1, "order": "".join(s.name for s in order)}
        for side in order:
            got: dict[str, Any] = {}
            lat, cpu = await incremental(side, a.incremental)
            got["sss_incr_p50_ms"] = _ms(lat)
            got["sss_incr_cpu_ms"] = round(cpu / 1e6 / a.incremental, 4)
            lat, cpu = await sync_incremental(side, a.sync_incremental)
            got["sync_incr_p50_ms"] = _ms(lat)
            got["sync_incr_cpu_ms"] = round(cpu / 1e6 / a.sync_incremental, 4)
            rng = random.Random(1000 + r)  # both sides: the same rooms and senders
            lat, cpu = await deliveries(side, a.deliveries, plan, rng, f"{run}r{r}", a.settle)
            got["delivery_p50_ms"] = _ms(lat)
            # The tail, for what lands in a few deliveries (a garbage collection, a checkpoint).
            got["delivery_p90_ms"] = round(statistics.quantiles(lat, n=10)[-1] * 1000, 3)
            got["delivery_cpu_ms"] = round(cpu / 1e6 / a.deliveries, 4)
            row[side.name] = got
        rounds.append(row)
        h.log(
            f"round {r + 1}: "
            + "; ".join(
                f"{s.name} " + " ".join(f"{k}={v}" for k, v in row[s.name].items()) for s in sides
            )
        )
    return {"rounds": rounds, "summary": summarize(rounds)}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure: the medians of A and B, the median of B/A within a round, and in how
    many rounds B was lower."""
    out: dict[str, Any] = {}
    for key in rounds[0]["A"]:
        av = [r["A"][key] for r in rounds]
        bv = [r["B"][key] for r in rounds]
        ratios = [b / a for a, b in zip(av, bv, strict=True) if a]
        out[key] = {
            "A": round(statistics.median(av), 4),
            "B": round(statistics.median(bv), 4),
            "B/A": round(statistics.median(ratios), 4) if ratios else None,
            "B lower": f"{sum(b < a for a, b in zip(av, bv, strict=True))}/{len(rounds)}",
        }
    return out


def report(result: dict[str, Any]) -> None:
    a, b = (
        f"{result[side]} ({result[f'python_{side}']})"
        if f"python_{side}" in result
        else result[side]
        for side in "ab"
    )
    print(f"A = {a}, B = {b}; {len(result['rounds'])} rounds")
    rows = [
        [k, h.fmt(v["A"], 4), h.fmt(v["B"], 4), h.fmt(v["B/A"], 3), v["B lower"]]
        for k, v in result["summary"].items()
    ]
    h.print_table(["figure", "A", "B", "B/A (median of rounds)", "B lower in"], rows)


def report_swapped(first: dict[str, Any], second: dict[str, Any]) -> None:
    """Two runs of the same two builds with the sides swapped: each side's own effect
    (seen in runs of one build on both sides) cancels in sqrt(first B/A / second B/A),
    the second build's figures over the first's."""
    if (first["a"], first["b"]) != (second["b"], second["a"]):
        raise h.BenchError("the second run must be the first with its sides swapped")
    print(f"{first['b']} against {first['a']}, sides swapped between two runs")
    rows = []
    for key, v in first["summary"].items():
        w = second["summary"].get(key)
        if not w or not v["B/A"] or not w["B/A"]:
            continue
        rows.append(
            [key, h.fmt(v["B/A"], 3), h.fmt(w["B/A"], 3), h.fmt((v["B/A"] / w["B/A"]) ** 0.5, 3)]
        )
    h.print_table(["figure", "run 1 B/A", "run 2 B/A", "B of run 1 over A, sides cancelled"], rows)


def report_files(paths: list[str]) -> None:
    """--report: each run; with two (the same builds, sides swapped), the two together."""
    runs = [json.loads(Path(f).read_text()) for f in paths]
    for run in runs:
        report(run)
    if len(runs) == 2:
        report_swapped(*runs)


def _target(
    root: Path, a: argparse.Namespace, ref: str, python: str | None = None
) -> DendriteTarget:
    args = argparse.Namespace(**vars(a))
    root.mkdir(parents=True)
    if python and not ref:
        raise h.BenchError("an interpreter of its own needs a git ref for its side")
    if ref:
        launcher, _ = h.export_ref(ref, root, python)
        args.server_exe = str(launcher)
        args.git_ref = ref
    return DendriteTarget(root, args)


def start_pair(
    root: Path,
    a: argparse.Namespace,
    seed: Callable[[Bench], Awaitable[Any]],
    seed_with: str = "a",
) -> tuple[DendriteTarget, DendriteTarget, Any]:
    """Servers A and B on copies of one seeded data directory (the same rooms, users,
    tokens and signing key), both started; what `seed` returned. `seed_with`: the side
    that seeds (the older build, when the newer one adds a schema delta: it migrates its
    copy when it starts)."""
    ta = _target(root / "A", a, a.a, getattr(a, "python_a", None))
    tb = _target(root / "B", a, a.b, getattr(a, "python_b", None))
    seeder, other = (ta, tb) if seed_with == "a" else (tb, ta)
    seeder.prepare()
    seeder.start()
    seeded = h.run_async(seed(Bench(a, seeder)))
    seeder.stop()
    shutil.copytree(seeder.data_dir, other.data_dir)
    other.exe = h.find_dendrite_exe(other.args.server_exe)
    config = other.data_dir / "config.toml"
    config.write_text(
        config.read_text().replace(f"127.0.0.1:{seeder.port}", f"127.0.0.1:{other.port}")
    )
    ta.start()
    tb.start()
    return ta, tb, seeded


def begin(
    p: argparse.ArgumentParser, a: argparse.Namespace, prefix: str
) -> tuple[Path, str] | None:
    """How both pair benches start: `--report` (then None: nothing more to do), or
    `--a` checked, this process on the client's CPU, and the run's data root and ID."""
    if a.report:
        report_files(a.report)
        return None
    if a.a is None:
        p.error("--a is required ('' for the working tree)")
    if a.client_cpu is not None and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {a.client_cpu})
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=a.tmp_dir))
    return root, "".join(random.choices("abcdefghijkmnpqrstuvwxyz", k=6))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", help="git ref of build A ('' = the working tree)")
    p.add_argument("--b", default="", help="git ref of build B ('' = the working tree)")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--incremental", type=int, default=300, help="sliding sync, per round")
    p.add_argument("--sync-incremental", type=int, default=300, help="/sync, per round")
    p.add_argument("--deliveries", type=int, default=20, help="per round")
    p.add_argument("--settle", type=float, default=0.1, help="poll parked -> send (s)")
    p.add_argument("--rooms", type=int, default=200)
    p.add_argument("--messages", type=int, default=10)
    p.add_argument("--users", type=int, default=5)
    p.add_argument("--seed-concurrency", type=int, default=8)
    p.add_argument("--presence", choices=["on", "off"], default="on")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--config", action="append", metavar="SECTION.KEY=VALUE")
    p.add_argument("--server-exe")
    for side in "ab":
        p.add_argument(
            f"--python-{side}",
            metavar="PYTHON",
            help=f"build {side.upper()}'s interpreter (a venv with the project's dependencies)",
        )
    p.add_argument("--tmp-dir")
    p.add_argument("--json", metavar="OUT")
    p.add_argument(
        "--report",
        metavar="RUN.json",
        nargs="+",
        help="report a run; or two runs of the same builds with the sides swapped",
    )
    a = p.parse_args(argv)
    started = begin(p, a, "bench_pair")
    if started is None:
        return 0
    root, run = started
    targets: list[DendriteTarget] = []
    try:
        ta, tb, (users, plan) = start_pair(root, a, lambda b: bench_sync.seed(b, run))
        targets += [ta, tb]
        env = {"host_probe": h.host_probe(), "cpu": h.cpu_model()}
        sides = [Side("A", ta, users), Side("B", tb, users)]

        async def go() -> dict[str, Any]:
            try:
                return await measure(a, sides, plan, run)
            finally:
                for side in sides:
                    await side.aclose()

        result = {"a": a.a, "b": a.b or "working tree", "env": env, **h.run_async(go())}
        for side in "ab":
            if getattr(a, f"python_{side}"):
                result[f"python_{side}"] = getattr(a, f"python_{side}")
    finally:
        for t in targets:
            t.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(result)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
