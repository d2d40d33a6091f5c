"""bench_fanout_pair: bench_fanout's big-room fan-out, two builds side by side, measured
in alternating rounds, so that a difference of a few percent shows.

    python bench/bench_fanout_pair.py --a REF [--b REF] [--rounds 12] [--json OUT]
    python bench/bench_fanout_pair.py --report RUN1.json [RUN2.json]

Why: bench_fanout.py runs one build at a time, and on this machine runs of one build a
few minutes apart differ by 20-30 % (bench/RESULTS.md, seventeenth session), more than
a change to the fan-out is worth. As bench_pair.py does for single deliveries, both
servers run at once, pinned to the same core, on copies of one seeded database; each
round sends --messages big-room messages into A and then into B (B then A in the next
round), so each pair of figures is measured within seconds.

Workload per server (bench_fanout.py's): --members users in one room, --clients of them
long-polling (--sss-share on Element X's room-list sliding sync request, the rest on
legacy /sync), the other side's pollers parked meanwhile; a member who does not poll
sends, and (unless --no-dm) 1 ms later a DM partner sends into a DM whose other member
polls. Figures per round and server: deliveries p50 / p95 over (message, recipient),
last recipient p50, DM delivery p50, big send p50, and server CPU per big-room message
(all threads, /proc/PID/task/*/schedstat, from the first send until every answer of the
round's last message is in and --settle seconds more for the re-polls).

`--report RUN1 RUN2` on two runs with the sides swapped cancels each side's own effect
(bench_pair.report_swapped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fanout as fan
import bench_pair as pair
import harness as h
from bench_sliding_sync import Bodies
from harness import CS, DendriteTarget, RawConn, User, q


class FanSide:
    """One server with its pollers and senders."""

    def __init__(self, name: str, target: DendriteTarget) -> None:
        self.name = name
        self.target = target
        self.pollers: list[fan.Poller] = []
        self.dm_poller: fan.Poller | None = None
        self.sender: RawConn | None = None
        self.dm_sender: RawConn | None = None
        self.tasks: list[asyncio.Future[None]] = []
        self.stop = asyncio.Event()

    async def start(self, a: argparse.Namespace, users: list[User]) -> None:
        port = self.target.port
        n_sss = round(a.clients * a.sss_share)
        bodies = Bodies()
        self.pollers = [
            fan.Poller(port, u, "sss" if i < n_sss else "legacy", bodies)
            for i, u in enumerate(users[1 : a.clients + 1])
        ]
        self.dm_poller = fan.Poller(port, users[-1], "legacy", bodies)
        everyone = [*self.pollers, self.dm_poller]
        await h.bounded([p.once(0) for p in everyone], 8, f"{self.name}: initial syncs")
        self.sender = RawConn(port, users[0].access_token)
        self.dm_sender = RawConn(port, users[-2].access_token)
        self.tasks = [asyncio.ensure_future(p.run(self.stop)) for p in everyone]

    async def aclose(self) -> None:
        self.stop.set()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        conns = [p.conn for p in self.pollers]
        if self.dm_poller is not None:
            conns.append(self.dm_poller.conn)
        conns += [c for c in (self.sender, self.dm_sender) if c is not None]
        for c in conns:
            await c.aclose()


async def burst(
    a: argparse.Namespace, side: FanSide, room: str, dm: str, tag: str
) -> dict[str, float]:
    """--messages big-room messages (each with its DM), then the figures of the burst."""
    assert side.sender is not None and side.dm_sender is not None and side.dm_poller
    cpu0 = pair.thread_cpu_ns(side.target.pid)
    sends: list[tuple[bytes, float, float]] = []
    dms: list[tuple[bytes, float]] = []
    for i in range(a.messages):
        marker = f"{tag}-big-{i}".encode()
        dm_marker = f"{tag}-dm-{i}".encode()
        for p in side.pollers:
            p.watch.append(marker)
        side.dm_poller.watch.append(dm_marker)
        t_big = time.perf_counter()
        big = asyncio.ensure_future(
            fan.timed_put(
                side.sender,
                f"{CS}/rooms/{q(room)}/send/m.room.message/{tag}b{i}",
                h.dumps({"msgtype": "m.text", "body": marker.decode()}),
            )
        )
        if not a.no_dm:
            await asyncio.sleep(0.001)
            t_dm = time.perf_counter()
            await fan.timed_put(
                side.dm_sender,
                f"{CS}/rooms/{q(dm)}/send/m.room.message/{tag}d{i}",
                h.dumps({"msgtype": "m.text", "body": dm_marker.decode()}),
            )
            dms.append((dm_marker, t_dm))
        sends.append((marker, t_big, await big))
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline and any(  # noqa: ASYNC110 - the pollers' records
            marker not in p.arrivals for p in side.pollers
        ):
            await asyncio.sleep(0.005)
        await asyncio.sleep(a.interval)
    cpu = pair.thread_cpu_ns(side.target.pid) - cpu0
    lat: list[float] = []
    last: list[float] = []
    missing = 0
    for marker, t_sent, _ in sends:
        per = [p.arrivals[marker] - t_sent for p in side.pollers if marker in p.arrivals]
        missing += len(side.pollers) - len(per)
        lat.extend(per)
        if per:
            last.append(max(per))
    dm_lat = [side.dm_poller.arrivals[m] - t for m, t in dms if m in side.dm_poller.arrivals]
    missing += len(dms) - len(dm_lat)
    if missing:
        raise h.BenchError(f"{side.name}: {missing} deliveries missing")
    ordered = sorted(lat)
    return {
        "delivery_p50_ms": pair._ms(lat),
        "delivery_p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 3),
        "last_p50_ms": pair._ms(last),
        "dm_p50_ms": pair._ms(dm_lat) if dm_lat else 0.0,
        "send_big_p50_ms": pair._ms([s for _, _, s in sends]),
        "cpu_ms_per_message": round(cpu / 1e6 / a.messages, 3),
    }


async def measure(
    a: argparse.Namespace, sides: list[FanSide], users: list[User], room: str, dm: str, run: str
) -> dict[str, Any]:
    for side in sides:
        await side.start(a, users)
    await asyncio.sleep(1.0)
    rounds: list[dict[str, Any]] = []
    for r in range(a.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        row: dict[str, Any] = {"round": r + 1, "order": "".join(s.name for s in order)}
        for side in order:
            row[side.name] = await burst(a, side, room, dm, f"{run}r{r}{side.name}")
        rounds.append(row)
        h.log(
            f"round {r + 1}: "
            + "; ".join(
                f"{s.name} " + " ".join(f"{k}={v}" for k, v in row[s.name].items()) for s in sides
            )
        )
    return {"rounds": rounds, "summary": pair.summarize(rounds)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", help="git ref of build A ('' = the working tree)")
    p.add_argument("--b", default="", help="git ref of build B ('' = the working tree)")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--members", type=int, default=500)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--sss-share", type=float, default=0.7)
    p.add_argument("--messages", type=int, default=4, help="big-room messages per burst")
    p.add_argument("--interval", type=float, default=0.3, help="s after a message's answers")
    p.add_argument("--no-dm", action="store_true")
    p.add_argument("--presence", choices=["on", "off"], default="on")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--config", action="append", metavar="SECTION.KEY=VALUE")
    p.add_argument("--server-exe")
    p.add_argument("--tmp-dir")
    p.add_argument(
        "--seed-with",
        choices=["a", "b"],
        default="a",
        help="the build that seeds (the older one when a change adds a schema delta)",
    )
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--report", metavar="RUN.json", nargs="+")
    a = p.parse_args(argv)
    if a.clients > a.members - 1:
        p.error("--clients must leave at least one member who does not poll")
    started = pair.begin(p, a, "bench_fanout_pair")
    if started is None:
        return 0
    root, run = started
    targets: list[DendriteTarget] = []
    try:
        ta, tb, (users, room, dm) = pair.start_pair(
            root, a, lambda b: fan.seed(b, run), a.seed_with
        )
        targets += [ta, tb]
        env = {"host_probe": h.host_probe(), "cpu": h.cpu_model()}
        sides = [FanSide("A", ta), FanSide("B", tb)]

        async def go() -> dict[str, Any]:
            try:
                return await measure(a, sides, users, room, dm, run)
            finally:
                for side in sides:
                    await side.aclose()

        result = {
            "a": a.a,
            "b": a.b or "working tree",
            "env": env,
            "params": {k: getattr(a, k) for k in ("members", "clients", "messages", "rounds")},
            **h.run_async(go()),
        }
    finally:
        for t in targets:
            t.stop()
        shutil.rmtree(root, ignore_errors=True)
    pair.report(result)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
