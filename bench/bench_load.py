#!/usr/bin/env python3
"""bench_load: deployment-scale load (issue 12), dendrite-lite beside Synapse 1.163.2 on
SQLite, in the same run, driven by the shared yardstick `mxbench.py` (`load-seed`, `load`).

    python bench/bench_load.py [--servers dendrite,synapse] [--quick] [--json OUT]
    python bench/bench_load.py --mxbench ../shared/bench/mxbench.py --py-spy bench/results/load-spy
    python bench/bench_load.py --report RUN1.json RUN2.json   # markdown for RESULTS.md

mxbench runs as a subprocess (this file never imports it, and nothing in the project needs
it): `--mxbench PATH`, by default ../shared/bench/mxbench.py beside the repository, run with
this venv's python (it needs httpx, a test extra).  For each server in turn (fresh data
directory, rate limits lifted, server pinned to --server-cpu, mxbench to --client-cpu):

  load-seed   `mxbench load-seed` with its defaults: 500 users, 120 family rooms of 3-8
              members, three public rooms every user joins, 300 DMs, 5 messages per room.
              Then wait until the server's own background work has settled.
  runs        `mxbench load --pid SERVER` windows (--duration s each, 120; --quick 60):
                (1) 100 clients, 10 msg/s, presence on    (the issue's headline workload)
                (2) 100 clients, 10 msg/s, presence off
                (3) 200 clients, 10 msg/s, presence off
                (4) 100 clients, 30 msg/s, presence off
              (optional, --runs 5,6: 200 clients resp. 30 msg/s with presence on).
              70 % of the clients long-poll simplified sliding sync with Element X's
              room-list request, 30 % legacy /sync; Poisson sends into random rooms.
              Presence is a config switch, so the server is restarted (same data
              directory) whenever it changes: dendrite-lite's `[presence] enabled`,
              Synapse's `presence: enabled`.  Before each window: wait for a quiet machine.

From mxbench's --json: delivery latency p50/p95/p99 per (message, recipient) for all
clients, SSS and legacy clients and per room kind (big/family/DM), the send's p95, server
CPU (fraction of a core over the window, ms per message), VmRSS before/after, missing
deliveries (any is an error: exit code 1), and the host's per-CPU busy time, from which
"other load" (busy minus the server's, resp. the client's, own use) is derived.

--py-spy DIR profiles dendrite-lite during the window of run (1) only (attached when mxbench
says the window opened, detached when it closes), prints the hottest functions and the CPU
split by what the samples were doing (sliding sync, legacy sync, send path, presence, ...),
with an estimate of the CPU per woken long-poll.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
from harness import Bench, Row

DEFAULT_MXBENCH = h.REPO.parent / "shared" / "bench" / "mxbench.py"

# key -> (label, clients, msg/s, presence)
RUNS: dict[str, tuple[str, int, float, bool]] = {
    "1": ("100 clients, 10 msg/s, presence on", 100, 10.0, True),
    "2": ("100 clients, 10 msg/s, presence off", 100, 10.0, False),
    "3": ("200 clients, 10 msg/s, presence off", 200, 10.0, False),
    "4": ("100 clients, 30 msg/s, presence off", 100, 30.0, False),
    "5": ("200 clients, 10 msg/s, presence on", 200, 10.0, True),
    "6": ("100 clients, 30 msg/s, presence on", 100, 30.0, True),
}
GOAL_DELIVERY_P95_MS = 50.0
GOAL_DELIVERY_HEAVY_P95_MS = 100.0
GOAL_SEND_P95_MS = 20.0
GOAL_CPU_CORES = 0.2
GOAL_RSS_BYTES = 100e6  # "100 MB"
# Synapse's figures as the issue quotes them (same harness, one core)
SYNAPSE_REFERENCE = {"1": 1502.0, "2": 419.0, "3": 1075.0, "4": 1021.0}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mxbench",
        type=Path,
        default=DEFAULT_MXBENCH,
        help=f"the shared yardstick's mxbench.py (default {DEFAULT_MXBENCH})",
    )
    p.add_argument(
        "--mxbench-python",
        default=sys.executable,
        help="python that runs mxbench (needs httpx; default: this one)",
    )
    p.add_argument("--runs", default="1,2,3,4", help="which load runs, in order (1,2,3,4)")
    p.add_argument("--duration", type=float, help="seconds of sending per run (120; quick 60)")
    p.add_argument("--users", type=int, default=500, help="load-seed users (500)")
    p.add_argument("--legacy-share", type=float, default=0.3, help="clients on legacy /sync (0.3)")
    p.add_argument("--drain", type=float, default=30.0, help="mxbench --drain (30)")
    p.add_argument("--seed-timeout", type=float, default=3600.0, help="load-seed limit, s (3600)")


def defaults(a: argparse.Namespace) -> None:
    if a.duration is None:
        a.duration = 60.0 if a.quick else 120.0
    a.presence = "on"  # the first run's; later runs restart the server as they need
    keys = [k.strip() for k in a.runs.split(",") if k.strip()]
    bad = [k for k in keys if k not in RUNS]
    if bad:
        raise SystemExit(f"bench_load: unknown run(s) {bad}; choose from {', '.join(RUNS)}")
    a.run_keys = keys
    if not a.report:
        if not a.mxbench.is_file():
            raise SystemExit(
                f"bench_load: mxbench not found at {a.mxbench}: pass --mxbench PATH to the"
                " shared yardstick's mxbench.py (../shared/bench/mxbench.py)"
            )
        if a.py_spy:
            exe = a.py_spy_exe or shutil.which("py-spy") or str(h.REPO / ".venv/bin/py-spy")
            if not Path(exe).is_file():
                raise SystemExit("bench_load: py-spy not found (.venv/bin/pip install py-spy)")


# ---------------------------------------------------------------------------------------
# mxbench as a subprocess
# ---------------------------------------------------------------------------------------
async def mxbench(
    b: Bench,
    argv: list[str],
    log_name: str,
    limit_s: float,
    on_line: Callable[[str], None] | None = None,
) -> tuple[int, str]:
    """Run `mxbench ARGV` (pinned like this process, i.e. to the client CPU); its stderr goes
    to our log as it comes (and to on_line), stdout and stderr to root/<log_name>.log.
    Returns (exit code, stdout)."""
    a = b.args
    cmd = [a.mxbench_python, str(a.mxbench.resolve()), *argv]
    log_path = b.target.root / f"{log_name}.log"
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out: list[bytes] = []

    async def pump_err(stream: asyncio.StreamReader, f: Any) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            f.write(line + "\n")
            print(f"    {line}", file=sys.stderr, flush=True)
            if on_line is not None:
                on_line(line)

    async def pump_out(stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            out.append(raw)

    with open(log_path, "a") as f:  # noqa: ASYNC230 - a small local log
        f.write(f"$ {' '.join(cmd)}\n")
        try:
            await asyncio.wait_for(
                asyncio.gather(pump_err(proc.stderr, f), pump_out(proc.stdout), proc.wait()),
                limit_s,
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise h.BenchError(f"mxbench {argv[0]} did not finish within {limit_s:.0f} s") from None
        text = b"".join(out).decode(errors="replace")
        f.write(text)
    assert proc.returncode is not None
    return proc.returncode, text


async def load_seed(b: Bench, state: Path) -> dict[str, Any]:
    a = b.args
    base = f"http://127.0.0.1:{b.port}"
    argv = ["load-seed", "--base-url", base, "--state", str(state), "--users", str(a.users)]
    h.log(f"{b.target.kind}: mxbench load-seed ({a.users} users, defaults otherwise)")
    t0 = time.perf_counter()
    rc, out = await mxbench(b, argv, f"{b.target.kind}-load-seed", a.seed_timeout)
    if rc != 0:
        raise h.BenchError(f"mxbench load-seed exited with {rc}:\n{b.target.log_tail()}")
    summary: dict[str, Any] = {}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            summary = json.loads(line)
            break
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    h.log(f"{b.target.kind}: seeded in {summary['wall_s']} s {summary.get('phases_s')}")
    return summary


# ---------------------------------------------------------------------------------------
# presence switch (a restart on the same data directory)
# ---------------------------------------------------------------------------------------
SYNAPSE_PRESENCE = """
import sys, yaml
path, on = sys.argv[1], sys.argv[2] == "1"
c = yaml.safe_load(open(path))
c["presence"] = {"enabled": on}
yaml.safe_dump(c, open(path, "w"))
"""


async def set_presence(b: Bench, on: bool) -> dict[str, Any] | None:
    """Restart the server with presence on/off if it is not so already."""
    t = b.target
    if t.presence == on:
        return None
    t.stop()
    if t.kind == "dendrite":
        h.set_toml(t.data_dir / "config.toml", "presence", "enabled", "true" if on else "false")
    else:
        proc = await asyncio.create_subprocess_exec(
            str(t.syn.PY),  # type: ignore[attr-defined]
            "-c",
            SYNAPSE_PRESENCE,
            str(t.data_dir / "homeserver.yaml"),
            "1" if on else "0",
        )
        if await proc.wait() != 0:
            raise h.BenchError("could not set presence in Synapse's homeserver.yaml")
    t.presence = on
    t.start()
    h.log(f"{t.label} restarted with presence {'on' if on else 'off'} (pid {t.pid})")
    settled = await h.settle(b)
    return {"presence": on, "start_s": round(t.start_s or 0, 2), "settle": settled}


# ---------------------------------------------------------------------------------------
# one load run
# ---------------------------------------------------------------------------------------
def other_load(res: dict[str, Any], a: argparse.Namespace) -> tuple[float | None, float | None]:
    """Busy time of the server's (client's) CPU beyond the server's (mxbench's) own use."""
    hw = res.get("host_cpu_window") or {}
    srv = (res.get("proc") or {}).get("cpu_util_window")
    cli = (res.get("client") or {}).get("cpu_util")
    out: list[float | None] = []
    for cpu, own in ((a.server_cpu, srv), (a.client_cpu, cli)):
        busy = (hw.get(f"cpu{cpu}") or {}).get("busy") if cpu is not None else None
        out.append(max(0.0, round(busy - own, 3)) if busy is not None and own is not None else None)
    return out[0], out[1]


def max_interval_other(res: dict[str, Any], a: argparse.Namespace) -> float | None:
    """The worst interval of the time series: server CPU's busy minus the server's use."""
    worst = None
    for s in res.get("series") or []:
        hb = s.get("host_busy") or {}
        busy = hb.get(f"cpu{a.server_cpu}")
        if busy is not None and s.get("server_cpu") is not None:
            v = max(0.0, busy - s["server_cpu"])
            worst = v if worst is None else max(worst, v)
    return round(worst, 3) if worst is not None else None


def keep_json(a: argparse.Namespace, src: Path, kind: str, key: str) -> str | None:
    """Copy mxbench's raw JSON next to --json OUT (OUT-stem.kind-runN.mxbench.json)."""
    if not a.json or not src.exists():
        return None
    out = Path(a.json)
    dst = out.with_name(f"{out.stem}.{kind}-run{key}.mxbench.json")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return str(dst)


async def load_run(b: Bench, key: str, state: Path) -> dict[str, Any]:
    a, t = b.args, b.target
    label, clients, rate, presence = RUNS[key]
    name = f"({key}) {label}"
    restart = await set_presence(b, presence)
    waited = await h.wait_quiet(b, name)
    out_json = t.root / f"{t.kind}-run{key}.mxbench.json"
    argv = ["load", "--state", str(state), "--base-url", f"http://127.0.0.1:{b.port}"]
    argv += ["--clients", str(clients), "--msg-rate", str(rate), "--duration", str(a.duration)]
    argv += ["--legacy-share", str(a.legacy_share), "--drain", str(a.drain)]
    argv += ["--pid", str(t.pid), "--json", str(out_json)]
    profiler: list[h.Profiler] = []
    profile: list[dict[str, Any] | None] = []
    want_profile = bool(a.py_spy) and t.kind == "dendrite" and key == a.run_keys[0]

    def on_line(line: str) -> None:
        if not want_profile:
            return
        if "window open" in line and not profiler:
            phase = f"load run {key} window"
            profiler.append(h.Profiler.start(t.pid, a.py_spy, phase, a.py_spy_exe, a.py_spy_rate))
            h.log(f"py-spy attached to {t.pid}")
        elif "window closed" in line and profiler and not profile:
            profile.append(profiler[0].stop())
            h.log("py-spy detached")

    h.log(f"{t.kind} {name}: mxbench load, {a.duration:.0f} s window")
    timeout = a.duration + a.drain + 900.0
    rc, _ = await mxbench(b, argv, f"{t.kind}-load", timeout, on_line)
    if profiler and not profile:
        profile.append(profiler[0].stop())
    if not out_json.exists():
        raise h.BenchError(f"{name}: mxbench load exited with {rc} and wrote no JSON")
    res = json.loads(out_json.read_text())
    kept = keep_json(a, out_json, t.kind, key)
    if res.get("fatal"):
        b.error(f"{t.kind} {name}: mxbench load FAILED: {res['fatal']}")
    for cat, n in (res.get("errors") or {}).items():
        if n:
            samples = (res.get("error_samples") or {}).get(cat) or []
            b.error(f"{t.kind} {name}: {cat} x{n}" + (f", e.g. {samples[0]}" if samples else ""))
    for w in res.get("warnings") or []:
        b.warn(f"{name}: mxbench: {w}")
    lat = res.get("latency") or {}
    proc = res.get("proc") or {}
    srv_other, cli_other = other_load(res, a)
    for role, v in (("server", srv_other), ("client", cli_other)):
        if v is not None and v > 0.1:
            b.warn(f"{t.kind} {name}: other processes used {v:.2f} of the {role}'s CPU")
    d_all = lat.get("delivery_all") or {}
    phase: dict[str, Any] = {
        "n": d_all.get("n"),
        "p50_ms": d_all.get("p50_ms"),
        "p95_ms": d_all.get("p95_ms"),
        "p99_ms": d_all.get("p99_ms"),
        "requests_per_s": (res.get("messages") or {}).get("achieved_rate"),
        "server_cpu_ms_per_req": proc.get("cpu_ms_per_message"),
        "server_cpu_util": proc.get("cpu_util_window"),
        "client_cpu_util": (res.get("client") or {}).get("cpu_util"),
        "foreign_load_server_cpu": srv_other,
        "foreign_load_client_cpu": cli_other,
        "foreign_load_server_cpu_worst_interval": max_interval_other(res, a),
        "waited_for_quiet_s": waited,
        "mxbench_exit": rc,
        "mxbench_json": kept,
    }
    if restart:
        phase["restart"] = restart
    if profile and profile[0]:
        prof = profile[0]
        prof["categories"] = categorize(Path(prof["file"]), res)
        phase["profile"] = prof
    h.log(
        f"{t.kind} {name}: delivery p50 {phase['p50_ms']} p95 {phase['p95_ms']} ms, send p95"
        f" {(lat.get('send_all') or {}).get('p95_ms')} ms, server CPU {phase['server_cpu_util']}"
        f" ({phase['server_cpu_ms_per_req']} ms/msg), missing"
        f" {(res.get('deliveries') or {}).get('missing')}, other load {srv_other}/{cli_other}"
    )
    return {"phase": phase, "mxbench": trim(res)}


def trim(res: dict[str, Any]) -> dict[str, Any]:
    """What we keep of mxbench's JSON (everything but its argv and per-client detail)."""
    keys = (
        "params",
        "dataset",
        "setup",
        "window",
        "messages",
        "deliveries",
        "latency",
        "long_polls",
        "proc",
        "client",
        "host_cpu_window",
        "series",
        "warnings",
        "errors",
        "error_samples",
        "drain_s",
        "sss_path",
        "failed",
        "fatal",
    )
    return {k: res[k] for k in keys if k in res}


# ---------------------------------------------------------------------------------------
# where the CPU goes (py-spy's collapsed stacks, classified by what the sample was doing)
# ---------------------------------------------------------------------------------------
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    (
        "sliding sync",
        ("(dendrite_lite/sliding_sync/", "(dendrite_lite/api/client/sliding_sync.py)"),
    ),
    ("legacy /sync", ("(dendrite_lite/sync/", "(dendrite_lite/api/client/sync.py)")),
    (
        "send path",
        (
            "(dendrite_lite/api/client/room_events.py)",
            "(dendrite_lite/rooms/",
            "(dendrite_lite/events/",
            "(dendrite_lite/push/",
        ),
    ),
    ("presence", ("(dendrite_lite/presence.py)", "(dendrite_lite/api/client/presence.py)")),
    ("notifier", ("(dendrite_lite/notifier.py)",)),
    ("auth (token lookup)", ("(dendrite_lite/auth/", "(dendrite_lite/api/dependencies.py)")),
]
# Frames every stack of a thread has (the server's and the database threads' main loops,
# the request middleware): they say nothing about what the sample was doing.
CARRIERS = (
    "(dendrite_lite/server.py)",
    "(dendrite_lite/storage/db.py)",
    "(dendrite_lite/api/middleware.py)",
    "(dendrite-lite-at-ref)",
)
FALLBACK = "HTTP framework, middleware, event loop"


def categorize(path: Path, res: dict[str, Any]) -> dict[str, Any]:
    """Share of samples per category (the first category any frame of the stack belongs to,
    ignoring the CARRIERS; a stack with no project frame but those is the framework:
    uvicorn, Litestar, asyncio, the middleware, the database threads idling), each split by
    the package of the leaf frame; and, for sync and sliding sync, the CPU per long-poll
    response this implies (share x server CPU of the window / long-poll responses of that
    kind).  --gil samples are Python CPU only: time in C with the GIL
    released (SQLite, fsync) is not seen, so the per-response costs are approximate."""
    cats: dict[str, dict[str, int]] = {}
    funcs: dict[str, dict[str, int]] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        total += n
        frames = stack.split(";")
        inner = [f for f in frames[1:] if not any(c in f for c in CARRIERS)]
        cat = FALLBACK
        for name, marks in CATEGORIES:
            if any(m in f for f in inner for m in marks):
                cat = name
                break
        else:
            if any("(dendrite_lite/" in f for f in inner):
                cat = "other project code"
            elif "db-" in frames[0]:
                cat = "database threads outside any handler (commit, queue)"
        leaf = h.package_of(frames[-1])
        d = cats.setdefault(cat, {})
        d[leaf] = d.get(leaf, 0) + n
        fd = funcs.setdefault(cat, {})
        fd[frames[-1]] = fd.get(frames[-1], 0) + n
    if not total:
        return {"samples": 0}
    proc = res.get("proc") or {}
    window = (res.get("window") or {}).get("seconds") or 0
    cpu_s = (proc.get("cpu_util_window") or 0) * window
    polls = res.get("long_polls") or {}
    msgs = (res.get("messages") or {}).get("issued") or 0
    per = {"sliding sync": polls.get("sss", {}).get("in_window"), "legacy /sync": None}
    per["legacy /sync"] = polls.get("legacy", {}).get("in_window")
    out: dict[str, Any] = {"samples": total, "server_cpu_s": round(cpu_s, 2), "by_category": []}
    for cat, leaves in sorted(cats.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(leaves.values())
        share = n / total
        row: dict[str, Any] = {
            "category": cat,
            "share": round(share, 3),
            "cores": round(share * cpu_s / window, 3) if window else None,
            "leaf_packages": [
                [k, round(v / total, 3)]
                for k, v in sorted(leaves.items(), key=lambda kv: -kv[1])[:5]
            ],
        }
        row["top_functions"] = [
            [k, round(v / total, 3)]
            for k, v in sorted(funcs[cat].items(), key=lambda kv: -kv[1])[:6]
        ]
        count = per.get(cat)
        if count:
            row["ms_per_long_poll_response"] = round(share * cpu_s * 1000 / count, 2)
            row["long_poll_responses"] = count
        if cat == "send path" and msgs:
            row["ms_per_message"] = round(share * cpu_s * 1000 / msgs, 2)
        requests = sum(per[k] or 0 for k in per) + msgs
        if cat in (FALLBACK, "auth (token lookup)") and requests:
            row["ms_per_request"] = round(share * cpu_s * 1000 / requests, 2)
            row["requests"] = requests
        out["by_category"].append(row)
    return out


# ---------------------------------------------------------------------------------------
# the workload
# ---------------------------------------------------------------------------------------
async def workload(b: Bench) -> dict[str, Any]:
    a, t = b.args, b.target
    state = t.root / f"{t.kind}-load-state.json"
    out: dict[str, Any] = {"runs": {}, "phases": {}}
    out["seed"] = await load_seed(b, state)
    out["settle"] = await h.settle(b)
    out["rss_kib_after_seed"] = t.proc.read()["VmRSS"] if t.proc else None
    for key in a.run_keys:
        name = f"({key}) {RUNS[key][0]}"
        try:
            r = await load_run(b, key, state)
        except h.BenchError as e:
            b.error(f"{t.kind} {name}: {e}")
            continue
        out["phases"][name] = r["phase"]
        out["runs"][key] = r["mxbench"]
    return out


# ---------------------------------------------------------------------------------------
# tables and goals
# ---------------------------------------------------------------------------------------
def _get(key: str, *path: str) -> Callable[[dict[str, Any]], Any]:
    def get(res: dict[str, Any]) -> Any:
        v: Any = res["runs"][key]
        for p in path:
            v = v[p]
        return v

    return get


def _mib(key: str, when: str) -> Callable[[dict[str, Any]], Any]:
    def get(res: dict[str, Any]) -> Any:
        p = res["runs"][key]["proc"]
        return p.get(when, p.get("window_end"))["VmRSS"] / 1024

    return get


def rows(r: dict[str, Any]) -> list[Row]:
    keys: list[str] = []
    for res in r["servers"].values():
        for k in res.get("runs", {}):
            if k not in keys:
                keys.append(k)
    out: list[Row] = []
    for k in sorted(keys, key=list(RUNS).index):
        tag = f"({k})"
        out += [
            Row(f"{tag} delivery p50 ms", _get(k, "latency", "delivery_all", "p50_ms"), nd=1),
            Row(f"{tag} delivery p95 ms", _get(k, "latency", "delivery_all", "p95_ms"), nd=1),
            Row(f"{tag} delivery p99 ms", _get(k, "latency", "delivery_all", "p99_ms"), nd=1),
            Row(f"{tag} delivery p95, SSS ms", _get(k, "latency", "delivery_sss", "p95_ms"), nd=1),
            Row(
                f"{tag} delivery p95, legacy ms",
                _get(k, "latency", "delivery_legacy", "p95_ms"),
                nd=1,
            ),
            Row(
                f"{tag} delivery p95, big rooms ms",
                _get(k, "latency", "delivery_big", "p95_ms"),
                nd=1,
            ),
            Row(
                f"{tag} delivery p95, family rooms ms",
                _get(k, "latency", "delivery_family", "p95_ms"),
                nd=1,
            ),
            Row(f"{tag} delivery p95, DMs ms", _get(k, "latency", "delivery_dm", "p95_ms"), nd=1),
            Row(
                f"{tag} last recipient p95 ms",
                _get(k, "latency", "fanout_complete", "p95_ms"),
                nd=1,
            ),
            Row(f"{tag} send p95 ms", _get(k, "latency", "send_all", "p95_ms"), nd=1),
            Row(f"{tag} server CPU, cores", _get(k, "proc", "cpu_util_window"), nd=3),
            Row(f"{tag} server CPU ms/message", _get(k, "proc", "cpu_ms_per_message"), nd=1),
            Row(f"{tag} RSS before MiB", _mib(k, "before"), nd=0),
            Row(f"{tag} RSS after MiB", _mib(k, "after"), nd=0),
            Row(f"{tag} missing deliveries", _get(k, "deliveries", "missing"), nd=0),
        ]
    return out


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    d = r["servers"].get("dendrite")
    if not d or not d.get("runs"):
        return []
    runs = d["runs"]
    out: list[dict[str, Any]] = []

    def lat(k: str, which: str = "delivery_all") -> float | None:
        v = runs.get(k, {}).get("latency", {}).get(which, {}).get("p95_ms")
        return float(v) if v is not None else None

    def presence_note(k: str) -> str:
        return "" if RUNS[k][3] else " (presence off)"

    if "1" in runs:
        v = lat("1")
        out.append(
            {
                "goal": "delivery p95 <= 50 ms, 100 clients, 10 msg/s, presence on (1)",
                "value": f"{v:.1f} ms" if v is not None else "-",
                "met": v is not None and v <= GOAL_DELIVERY_P95_MS,
            }
        )
    for k in ("5", "3", "6", "4"):
        if k in runs and not (k == "3" and "5" in runs) and not (k == "4" and "6" in runs):
            v = lat(k)
            what = "200 clients" if RUNS[k][1] == 200 else "30 msg/s"
            out.append(
                {
                    "goal": f"delivery p95 <= 100 ms at {what} ({k}){presence_note(k)}",
                    "value": f"{v:.1f} ms" if v is not None else "-",
                    "met": v is not None and v <= GOAL_DELIVERY_HEAVY_P95_MS,
                }
            )
    if "1" in runs:
        s = lat("1", "send_all")
        out.append(
            {
                "goal": "send p95 <= 20 ms (1)",
                "value": f"{s:.1f} ms" if s is not None else "-",
                "met": s is not None and s <= GOAL_SEND_P95_MS,
            }
        )
        cpu = runs["1"].get("proc", {}).get("cpu_util_window")
        out.append(
            {
                "goal": "server CPU <= 0.2 of a core at 10 msg/s (1)",
                "value": f"{cpu:.3f} cores" if cpu is not None else "-",
                "met": cpu is not None and cpu <= GOAL_CPU_CORES,
            }
        )
        p = runs["1"].get("proc", {})
        after = (p.get("after") or p.get("window_end") or {}).get("VmRSS")
        rss_all = [(x.get("proc", {}).get("after") or {}).get("VmRSS") for x in runs.values()]
        worst = max((v for v in rss_all if v), default=None)
        out.append(
            {
                "goal": "RSS <= 100 MB after the run (1)",
                "value": (
                    f"{after * 1024 / 1e6:.0f} MB ({after / 1024:.0f} MiB); max after any run"
                    f" {worst * 1024 / 1e6:.0f} MB"
                    if after and worst
                    else "-"
                ),
                "met": after is not None and after * 1024 <= GOAL_RSS_BYTES,
            }
        )
    missing = {k: x.get("deliveries", {}).get("missing") for k, x in runs.items()}
    out.append(
        {
            "goal": "zero missing deliveries (every run)",
            "value": ", ".join(f"({k}) {v}" for k, v in missing.items()),
            "met": all(v == 0 for v in missing.values()),
        }
    )
    return out


def print_profile(r: dict[str, Any]) -> None:
    for kind, res in r["servers"].items():
        for name, m in res.get("phases", {}).items():
            cats = (m.get("profile") or {}).get("categories")
            if not cats or not cats.get("samples"):
                continue
            print(
                f"\nwhere {h.LABEL[kind]}'s CPU went in {name} ({cats['samples']} py-spy samples,"
                f" {cats['server_cpu_s']} s of server CPU in the window):"
            )
            hdr = ["what the sample was doing", "share", "cores", "per unit", "leaf packages"]
            rows_: list[list[str]] = []
            for c in cats["by_category"]:
                unit = "-"
                if "ms_per_long_poll_response" in c:
                    unit = (
                        f"{c['ms_per_long_poll_response']} ms/response ({c['long_poll_responses']})"
                    )
                elif "ms_per_message" in c:
                    unit = f"{c['ms_per_message']} ms/message"
                elif "ms_per_request" in c:
                    unit = f"{c['ms_per_request']} ms/request ({c['requests']})"
                rows_.append(
                    [
                        c["category"],
                        f"{c['share']:.1%}",
                        h.fmt(c["cores"], 3),
                        unit,
                        ", ".join(f"{k} {v:.0%}" for k, v in c["leaf_packages"][:4]),
                    ]
                )
            h.print_table(hdr, rows_)
            for c in cats["by_category"]:
                top = "; ".join(f"{k} {v:.1%}" for k, v in c.get("top_functions", [])[:5])
                print(f"  {c['category']}: {top}")


def pivot(r: dict[str, Any]) -> None:
    """One markdown table per run file: a row per figure, per load run a column of ours, one
    of Synapse's and their ratio (Synapse / ours for latency, CPU, memory)."""
    runs: dict[str, dict[str, list[Any]]] = {}
    for c in r.get("comparison", []):
        m = re.match(r"\((\d)\) (.*)", c["label"])
        if m:
            runs.setdefault(m.group(2), {})[m.group(1)] = [c]
    keys = sorted({k for v in runs.values() for k in v}, key=list(RUNS).index)
    headers = ["figure"]
    for k in keys:
        headers += [f"({k}) ours", f"({k}) Synapse", "ratio"]
    rows_ = []
    for label, per in runs.items():
        row = [label]
        for k in keys:
            c = per.get(k, [{}])[0]
            nd = c.get("nd", 2)
            row += [
                h.fmt(c.get("dendrite"), nd),
                h.fmt(c.get("synapse"), nd),
                f"{c['ratio']:.1f}x" if c.get("ratio") else "-",
            ]
        rows_.append(row)
    row = ["other load on server / client CPU"]
    for k in keys:
        for kind in ("dendrite", "synapse"):
            ph = [
                m
                for n, m in r["servers"].get(kind, {}).get("phases", {}).items()
                if n.startswith(f"({k})")
            ]
            row.append(
                f"{h.fmt(ph[0].get('foreign_load_server_cpu'))} /"
                f" {h.fmt(ph[0].get('foreign_load_client_cpu'))}"
                if ph
                else "-"
            )
        row.append("")
    rows_.append(row)
    print("runs: " + "; ".join(f"({k}) {RUNS[k][0]}" for k in keys) + "\n")
    h.md_table(headers, rows_)


def main() -> int:
    # harness.main_for, plus the profile breakdown after the tables
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    h.add_common_args(p)
    add_args(p)
    args = p.parse_args()
    if args.report:
        h.report(args.report)
        for f in args.report:
            pivot(json.loads(Path(f).read_text()))
            print_profile(json.loads(Path(f).read_text()))
        return 0
    defaults(args)
    import signal

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    try:
        result = h.run_servers(args, workload, "bench_load")
    except h.BenchError as e:
        print(f"\n*** bench_load FAILED: {e}", file=sys.stderr)
        return 1
    result["comparison"] = h.comparison(result, rows(result))
    result["goals"] = goals(result)
    result["synapse_reference_p95_ms"] = SYNAPSE_REFERENCE
    rc = h.finish(args, result)
    print_profile(result)
    return rc


if __name__ == "__main__":
    sys.exit(main())
