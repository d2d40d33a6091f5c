#!/usr/bin/env python3
"""bench_foundation: start-up, memory, auth-path latency and group commit of dendrite-lite.

    python bench/bench_foundation.py [--quick] [--json OUT]       # one full run
    python bench/bench_foundation.py --report RUN1.json RUN2.json # markdown table of runs

Each run creates a throw-away data directory (`dendrite-lite init`, registration open,
rate limits off), then:

  1. cold start   spawns `dendrite-lite run` --starts times (default 5) and times each
                  spawn -> first 200 from GET /_matrix/client/versions; the last server
                  keeps running.  Idle RSS (VmRSS) is read --idle-wait s after it answered,
                  and again --idle-wait s after all the load below.
  2. auth path    sequential logins (argon2id by design), sequential GET /versions (the
                  framework floor), sequential GET /account/whoami on one keep-alive
                  connection, the same with httpx (client-overhead check), and whoami from
                  --concurrency keep-alive connections for --concurrent-seconds.
  3. group commit PUT /user/{id}/account_data/{type} from 1, 10 and 100 concurrent writers
                  (own user, token and connection each) for --write-seconds each, with the
                  database's commit batch-size and commit-time histograms scraped from
                  GET /metrics before and after each level.

Latency is client-observed wall time from just before the request is written until the
whole body has been read.  Server CPU per request is the utime+stime delta of the server
process (/proc/PID/stat) over a phase divided by the requests completed in it; client CPU
is this process's own CPU time over the phase (it must stay well below one core, or the
client and not the server is being measured).  Every non-2xx answer is an error: it is
reported, and the exit code is 1.

The server is pinned to --server-cpu (default 0) and this process to --client-cpu
(default 1).  Everything talks to 127.0.0.1; every loop is bounded by a count or a
deadline.  Needs only the standard library (uvloop is used if importable; httpx only for
the client-overhead check, skipped without it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The generic pieces (statistics, /proc counters, the raw HTTP client, py-spy) are shared
# with the other benches: bench/harness.py.
from harness import (
    BenchError,
    Proc,
    Profiler,
    RawConn,
    filesystem_of,
    free_port,
    has_uvloop,
    host_cpu,
    host_cpu_busy,
    log,
    md_table,
    print_table,
    run_async,
    summarize,
)

TOOL_VERSION = "1"
REPO = Path(__file__).resolve().parent.parent
VERSIONS = "/_matrix/client/versions"
WHOAMI = "/_matrix/client/v3/account/whoami"
REGISTER = "/_matrix/client/v3/register"
LOGIN = "/_matrix/client/v3/login"
ACCOUNT_DATA_TYPE = "org.dendrite_lite.bench"

# The goals (docs: bench/README.md).
GOAL_START_S = 1.5
GOAL_IDLE_RSS_MIB = 60.0
GOAL_WHOAMI_P95_MS = 5.0


# ---------------------------------------------------------------------------------------
# the server process
# ---------------------------------------------------------------------------------------
def find_server_exe(arg: str | None) -> Path:
    candidates = [Path(arg)] if arg else []
    candidates += [
        REPO / ".venv" / "bin" / "dendrite-lite",
        Path(sys.executable).parent / "dendrite-lite",
    ]
    which = shutil.which("dendrite-lite")
    if which:
        candidates.append(Path(which))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise BenchError(
        "cannot find the dendrite-lite executable (make the venv, or pass --server-exe)"
    )


def init_data_dir(exe: Path, data_dir: Path, port: int) -> None:
    subprocess.run(
        [
            str(exe),
            "init",
            "--data-dir",
            str(data_dir),
            "--server-name",
            "localhost",
            "--listen",
            f"127.0.0.1:{port}",
            "--open-registration",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cfg = data_dir / "config.toml"
    text = cfg.read_text()
    new, n = re.subn(r"(\[rate_limits\][^\[]*?)enabled\s*=\s*true", r"\1enabled = false", text)
    if n != 1:
        raise BenchError(f"could not switch rate limits off in {cfg}")
    cfg.write_text(new)


class Server:
    """One `dendrite-lite run` child, pinned to a CPU."""

    def __init__(
        self,
        exe: Path,
        data_dir: Path,
        port: int,
        cpu: int | None,
        log_path: Path,
        env: dict[str, str] | None = None,
    ):
        self.exe, self.data_dir, self.port, self.cpu = exe, data_dir, port, cpu
        self.log_path, self.env = log_path, env
        self.start_cpu_s: float | None = None
        self.start_foreign: float | None = None
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, timeout: float = 60.0) -> float:
        """Spawn the server; return the seconds until GET /versions first answered 200."""
        cpu = self.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        logf = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        h0 = host_cpu()
        t0 = time.perf_counter()
        self.popen = subprocess.Popen(
            [str(self.exe), "run", "--data-dir", str(self.data_dir)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=pin,
            env=self.env,
        )
        logf.close()
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.popen.poll() is not None:
                raise BenchError(
                    f"server exited with {self.popen.returncode} during start-up:\n"
                    + self.log_tail()
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
                conn.request("GET", VERSIONS)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    wall = time.perf_counter() - t0
                    # CPU the server spent getting ready (robust to a noisy machine), and
                    # how busy its core was with anything else meanwhile.
                    self.start_cpu_s = Proc(self.popen.pid).read()["cpu_ms"] / 1000.0
                    busy = host_cpu_busy(h0, host_cpu())
                    if cpu is not None and f"cpu{cpu}" in busy:
                        self.start_foreign = max(0.0, busy[f"cpu{cpu}"] - self.start_cpu_s / wall)
                    return wall
            except OSError:
                pass
            time.sleep(0.002)
        self.stop()
        raise BenchError(f"server did not answer 200 within {timeout} s:\n" + self.log_tail())

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


# ---------------------------------------------------------------------------------------
# HTTP/1.1 clients
# ---------------------------------------------------------------------------------------
class HttpxConn:
    """The same interface on httpx.AsyncClient (one keep-alive connection)."""

    def __init__(self, port: int, token: str | None = None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers=headers,
            timeout=60.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else None
        r = await self.client.request(method, path, content=body, headers=headers)
        return r.status_code, r.content

    async def aclose(self) -> None:
        await self.client.aclose()


Conn = RawConn | HttpxConn
ReqFn = Callable[[Any, int, int], Awaitable[tuple[int, bytes]]]


@dataclass
class Ctx:
    args: argparse.Namespace
    port: int
    proc: Proc
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, msg: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(msg)
        log(f"ERROR {msg}")

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log(f"WARNING {msg}")


async def measure(
    ctx: Ctx,
    name: str,
    conns: list[Any],
    req: ReqFn,
    *,
    count: int | None = None,
    seconds: float | None = None,
    warmup: int = 0,
) -> dict[str, Any]:
    """Closed loop: every connection sends its next request as soon as the previous one
    answered, until `count` requests per connection or `seconds` have passed."""
    assert count is not None or seconds is not None

    async def warm(i: int, c: Any) -> None:
        for k in range(warmup):
            await req(c, i, -1 - k)

    if warmup:
        await asyncio.gather(*(warm(i, c) for i, c in enumerate(conns)))
    lat: list[float] = []
    errors: list[str] = []
    p0 = ctx.proc.read()
    h0 = host_cpu()
    c0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + seconds if seconds is not None else None
    hard_stop = t0 + (seconds or 0) + 600.0  # a hung server cannot hold the run forever

    async def worker(i: int, c: Any) -> None:
        k = 0
        while k < (count if count is not None else 1 << 62):
            now = time.perf_counter()
            if (deadline is not None and now >= deadline) or now >= hard_stop:
                break
            s = time.perf_counter()
            status, body = await req(c, i, k)
            e = time.perf_counter()
            if 200 <= status < 300:
                lat.append(e - s)
            else:
                errors.append(f"{status} {body[:200]!r}")
            k += 1

    profiler = (
        Profiler.start(ctx.proc.pid, ctx.args.py_spy, name, ctx.args.py_spy_exe)
        if ctx.args.py_spy
        else None
    )
    await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    wall = time.perf_counter() - t0
    cpu_client = time.process_time() - c0
    p1 = ctx.proc.read()
    h1 = host_cpu()
    profile = profiler.stop() if profiler else None
    done = len(lat) + len(errors)
    res = summarize(lat)
    server_cpu = p1["cpu_ms"] - p0["cpu_ms"]
    res.update(
        {
            "connections": len(conns),
            "wall_s": round(wall, 3),
            "requests_per_s": round(done / wall, 1) if wall else None,
            "server_cpu_ms_per_req": round(server_cpu / done, 3) if done else None,
            "server_cpu_util": round(server_cpu / 1000.0 / wall, 3),
            "client_cpu_ms_per_req": round(cpu_client * 1000.0 / done, 3) if done else None,
            "client_cpu_util": round(cpu_client / wall, 3),
            "errors": len(errors),
        }
    )
    # Other tenants: how busy each pinned core was beyond what the server (resp. this
    # client) used there.  The machine is shared; a phase with much foreign load is noise.
    busy = host_cpu_busy(h0, h1)
    for role, cpu, own in (
        ("server", ctx.args.server_cpu, res["server_cpu_util"]),
        ("client", ctx.args.client_cpu, res["client_cpu_util"]),
    ):
        if cpu is not None and f"cpu{cpu}" in busy:
            other = max(0.0, round(busy[f"cpu{cpu}"] - own, 3))
            res[f"foreign_load_{role}_cpu"] = other
            if other > 0.1:
                ctx.warn(f"{name}: other processes used {other:.2f} of the {role}'s CPU {cpu}")
    if profile:
        res["profile"] = profile
    if errors:
        ctx.error(f"{name}: {len(errors)} non-2xx answers, e.g. {errors[0]}")
    if res["client_cpu_util"] > 0.7:
        ctx.warn(
            f"{name}: the client used {res['client_cpu_util']:.2f} of its core; "
            "it may be the bottleneck"
        )
    log(
        f"{name}: n={res.get('n')} p50={res.get('p50_ms')} p95={res.get('p95_ms')} ms "
        f"{res['requests_per_s']}/s srv {res['server_cpu_ms_per_req']} ms/req "
        f"(util {res['server_cpu_util']}), client util {res['client_cpu_util']}"
    )
    return res


# ---------------------------------------------------------------------------------------
# /metrics histograms
# ---------------------------------------------------------------------------------------
def parse_histogram(text: str, name: str) -> dict[str, Any]:
    buckets: dict[str, float] = {}
    out: dict[str, Any] = {"buckets": buckets, "sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            m = re.search(r'le="([^"]+)"', line)
            if m:
                buckets[m.group(1)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum"):
            out["sum"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_count"):
            out["count"] = float(line.rsplit(" ", 1)[1])
    return out


def histogram_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What was observed between two scrapes: per-bucket counts (not cumulative), the
    mean, and bucket-resolution percentiles (the upper bound of the bucket holding it)."""
    count = b["count"] - a["count"]
    total = b["sum"] - a["sum"]
    per_bucket: dict[str, int] = {}
    prev = 0.0
    cum_list = []
    for le, cum in b["buckets"].items():
        c = cum - a["buckets"].get(le, 0.0)
        cum_list.append((le, c))
        if c - prev > 0:
            per_bucket[le] = int(c - prev)
        prev = c

    def bucket_pct(p: float) -> str | None:
        if not count:
            return None
        for le, c in cum_list:
            if c >= count * p / 100.0:
                return le
        return "+Inf"

    return {
        "count": int(count),
        "mean": round(total / count, 6) if count else None,
        "p50_le": bucket_pct(50),
        "p95_le": bucket_pct(95),
        "p99_le": bucket_pct(99),
        "per_bucket": per_bucket,
    }


async def scrape(port: int) -> dict[str, dict[str, Any]]:
    c = RawConn(port)
    try:
        status, body = await c.request("GET", "/metrics")
    finally:
        await c.aclose()
    if status != 200:
        raise BenchError(f"GET /metrics answered {status}")
    text = body.decode()
    return {
        "batch": parse_histogram(text, "dendrite_db_commit_batch_size"),
        "seconds": parse_histogram(text, "dendrite_db_commit_seconds"),
    }


# ---------------------------------------------------------------------------------------
# the load phases (one event loop, server already running)
# ---------------------------------------------------------------------------------------
def password_of(i: int) -> str:
    return f"bench-password-{i}"


async def register_users(ctx: Ctx, n: int) -> list[dict[str, str]]:
    users: list[dict[str, str] | None] = [None] * n
    todo = list(range(n))

    async def worker() -> None:
        c = RawConn(ctx.port)
        try:
            while todo:
                i = todo.pop()
                body = {
                    "username": f"bench{i}",
                    "password": password_of(i),
                    "auth": {"type": "m.login.dummy"},
                    "inhibit_login": False,
                }
                status, data = await c.request("POST", REGISTER, json.dumps(body).encode())
                if status != 200:
                    raise BenchError(f"register bench{i}: {status} {data[:300]!r}")
                d = json.loads(data)
                users[i] = {
                    "user_id": d["user_id"],
                    "access_token": d["access_token"],
                    "localpart": f"bench{i}",
                }
        finally:
            await c.aclose()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(4)))
    log(f"registered {n} users in {time.perf_counter() - t0:.1f} s")
    return [u for u in users if u is not None]


async def phase_auth(ctx: Ctx, user: dict[str, str]) -> dict[str, Any]:
    a = ctx.args
    out: dict[str, Any] = {}

    login_body = json.dumps(
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user["localpart"]},
            "password": password_of(0),
            "initial_device_display_name": "bench_foundation",
        }
    ).encode()

    async def login(c: Any, i: int, k: int) -> tuple[int, bytes]:
        return await c.request("POST", LOGIN, login_body)

    c = RawConn(ctx.port)
    out["login_sequential"] = await measure(ctx, "login", [c], login, count=a.logins, warmup=3)
    await c.aclose()

    async def versions(c: Any, i: int, k: int) -> tuple[int, bytes]:
        return await c.request("GET", VERSIONS)

    c = RawConn(ctx.port)
    out["versions_sequential"] = await measure(
        ctx, "versions sequential", [c], versions, count=a.whoami_requests, warmup=100
    )
    await c.aclose()

    async def whoami(c: Any, i: int, k: int) -> tuple[int, bytes]:
        return await c.request("GET", WHOAMI)

    c = RawConn(ctx.port, user["access_token"])
    out["whoami_sequential"] = await measure(
        ctx, "whoami sequential", [c], whoami, count=a.whoami_requests, warmup=100
    )
    await c.aclose()

    try:
        hc: Any = HttpxConn(ctx.port, user["access_token"])
    except ImportError:
        log("httpx is not importable: skipping the client-overhead check")
    else:
        out["whoami_sequential_httpx"] = await measure(
            ctx,
            "whoami sequential (httpx)",
            [hc],
            whoami,
            count=max(100, a.whoami_requests // 4),
            warmup=50,
        )
        await hc.aclose()

    conns = [RawConn(ctx.port, user["access_token"]) for _ in range(a.concurrency)]
    out["whoami_concurrent"] = await measure(
        ctx,
        f"whoami {a.concurrency} connections",
        conns,
        whoami,
        seconds=a.concurrent_seconds,
        warmup=5,
    )
    for c in conns:
        await c.aclose()
    return out


async def phase_writes(ctx: Ctx, users: list[dict[str, str]]) -> dict[str, Any]:
    a = ctx.args
    out: dict[str, Any] = {}
    paths = [
        f"/_matrix/client/v3/user/{urllib.parse.quote(u['user_id'], safe='')}"
        f"/account_data/{ACCOUNT_DATA_TYPE}"
        for u in users
    ]

    async def put(c: Any, i: int, k: int) -> tuple[int, bytes]:
        return await c.request("PUT", paths[i], b'{"writer":%d,"seq":%d}' % (i, k))

    for level in a.writers:
        if level > len(users):
            raise BenchError(f"{level} writers need {level} users")
        conns = [RawConn(ctx.port, users[i]["access_token"]) for i in range(level)]
        # a couple of writes per connection first: connections open, caches warm
        for i, c in enumerate(conns):
            await put(c, i, -1)
        before = await scrape(ctx.port)
        res = await measure(ctx, f"account_data PUT x{level}", conns, put, seconds=a.write_seconds)
        after = await scrape(ctx.port)
        for c in conns:
            await c.aclose()
        res["commit_batch_size"] = histogram_delta(before["batch"], after["batch"])
        res["commit_seconds"] = histogram_delta(before["seconds"], after["seconds"])
        commits = res["commit_batch_size"]["count"]
        res["commits_per_s"] = round(commits / res["wall_s"], 1)
        res["writes_per_commit"] = res["commit_batch_size"]["mean"]
        log(
            f"  x{level}: {commits} commits, mean batch {res['writes_per_commit']}, "
            f"mean commit {res['commit_seconds']['mean']} s"
        )
        out[f"writers_{level}"] = res
    return out


async def load_phases(ctx: Ctx) -> dict[str, Any]:
    a = ctx.args
    rss: dict[str, Any] = {"before_load": ctx.proc.read()}
    users = await register_users(ctx, max(a.writers) + 1)
    rss["after_registrations"] = ctx.proc.read()
    res: dict[str, Any] = {"rss_phases": rss}
    res["auth"] = await phase_auth(ctx, users[0])
    rss["after_auth_phases"] = ctx.proc.read()
    res["group_commit"] = await phase_writes(ctx, users[1:])
    rss["after_writes"] = ctx.proc.read()
    return res


# ---------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------
def environment(exe: Path, args: argparse.Namespace) -> dict[str, Any]:
    cpu_model = None
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    server_python = exe.parent / "python"
    probe = (
        "import apsw, sys, json, importlib.metadata as md;"
        "print(json.dumps({'python': sys.version.split()[0], 'apsw': apsw.apsw_version(),"
        " 'sqlite': apsw.sqlite_lib_version(), 'litestar': md.version('litestar'),"
        " 'uvicorn': md.version('uvicorn'), 'uvloop': md.version('uvloop'),"
        " 'argon2-cffi': md.version('argon2-cffi')}))"
    )
    server_env: dict[str, Any] = {}
    try:
        server_env = json.loads(
            subprocess.run(
                [str(server_python), "-c", probe], check=True, capture_output=True, text=True
            ).stdout
        )
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
        server_env = {"error": str(e)}
    git = None
    dirty: list[str] | None = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        git = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # tracked files changed in the working tree (what ran is HEAD plus these)
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "tool_version": TOOL_VERSION,
        "git_head": git,
        "git_modified_files": dirty,
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "client_python": platform.python_version(),
        "server": server_env,
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "client": "raw asyncio streams" + (" + uvloop" if has_uvloop() else ""),
        "quick": args.quick,
    }


# ---------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    exe = find_server_exe(args.server_exe)
    ncpu = os.cpu_count() or 1
    if args.server_cpu is not None and args.server_cpu < 0:
        args.server_cpu = None
    if args.client_cpu is not None and args.client_cpu < 0:
        args.client_cpu = None
    if ncpu < 2 and (args.server_cpu is not None or args.client_cpu is not None):
        log("only one CPU: not pinning")
        args.server_cpu = args.client_cpu = None
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    env = environment(exe, args)
    result: dict[str, Any] = {"env": env}
    root = Path(tempfile.mkdtemp(prefix="bench-foundation-", dir=args.tmp_dir))
    data_dir = root / "data"
    port = free_port()
    server: Server | None = None
    ctx: Ctx | None = None
    start_warnings: list[str] = []
    try:
        init_data_dir(exe, data_dir, port)
        env["data_dir_fs"] = filesystem_of(root)
        env["fsync"] = fsync_probe(root)
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            # This environment never caches bytecode, so every start compiles the project's
            # modules (an installed package, or a clone run without the variable, has .pyc
            # files).  Time that case too, with a private cache the first start fills.
            result["start_bytecode_cached"] = time_cached_starts(args, exe, data_dir, port, root)
        starts: list[tuple[float, Server]] = []
        for i in range(args.starts):
            server = Server(exe, data_dir, port, args.server_cpu, root / "server.log")
            starts.append((server.start(), server))
            log(
                f"start {i + 1}/{args.starts}: first 200 after {starts[-1][0]:.3f} s"
                f" ({server.start_cpu_s:.3f} s CPU)"
            )
            if i < args.starts - 1:
                server.stop()
        assert server is not None
        proc = Proc(server.pid)
        result["start"] = start_stats(starts)
        for key in ("start", "start_bytecode_cached"):
            other = result.get(key, {}).get("foreign_load_server_cpu_max")
            if other is not None and other > 0.1:
                start_warnings.append(f"{key}: other processes used up to {other:.2f} of CPU")
        env["PYTHONDONTWRITEBYTECODE"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
        time.sleep(args.idle_wait)
        result["rss_idle"] = proc.read()
        log(f"idle after start: VmRSS {result['rss_idle']['VmRSS'] / 1024:.1f} MiB")
        ctx = Ctx(args, port, proc)
        result.update(run_async(load_phases(ctx)))
        time.sleep(args.idle_wait)
        result["rss_after_load"] = proc.read()
        log(
            f"idle after load: VmRSS {result['rss_after_load']['VmRSS'] / 1024:.1f} MiB, "
            f"VmHWM {result['rss_after_load']['VmHWM'] / 1024:.1f} MiB"
        )
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    assert ctx is not None
    result["errors"] = ctx.errors
    for w in start_warnings:
        log(f"WARNING {w}")
    result["warnings"] = start_warnings + ctx.warnings
    result["goals"] = goals(result)
    return result


def start_stats(starts: list[tuple[float, Server]]) -> dict[str, Any]:
    walls = [w for w, _ in starts]
    cpus = [s.start_cpu_s for _, s in starts if s.start_cpu_s is not None]
    foreign = [s.start_foreign for _, s in starts if s.start_foreign is not None]
    out: dict[str, Any] = {
        "samples_s": [round(w, 4) for w in walls],
        "median_s": round(statistics.median(walls), 4),
        "min_s": round(min(walls), 4),
        "max_s": round(max(walls), 4),
        "server_cpu_s": [round(c, 3) for c in cpus],
        "server_cpu_median_s": round(statistics.median(cpus), 3) if cpus else None,
        "foreign_load_server_cpu_max": round(max(foreign), 3) if foreign else None,
    }
    return out


def time_cached_starts(
    args: argparse.Namespace, exe: Path, data_dir: Path, port: int, root: Path
) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE")
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    starts: list[tuple[float, Server]] = []
    for i in range(args.starts + 1):
        server = Server(exe, data_dir, port, args.server_cpu, root / "server.log", env)
        t = server.start()
        server.stop()
        if i == 0:
            log(f"bytecode cache filled by a first start ({t:.3f} s, not counted)")
        else:
            starts.append((t, server))
            log(f"start with bytecode cached {i}/{args.starts}: {t:.3f} s")
    return start_stats(starts)


def fsync_probe(directory: Path, n: int = 200) -> dict[str, Any]:
    """How long one 4 KiB append + fsync takes where the database lives: the floor of a
    synchronous=FULL commit on this disk (a virtual disk with a write-back host cache is
    far faster than an SD card)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(n):
            os.write(fd, b"\0" * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            samples.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    s = summarize(samples)
    log(f"fsync of a 4 KiB append: p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms")
    return s


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    start = r["start"]["median_s"]
    rss = r["rss_idle"]["VmRSS"] / 1024.0
    p95 = r["auth"]["whoami_sequential"]["p95_ms"]
    return [
        {"goal": "start < 1.5 s", "value": f"{start:.3f} s", "met": start < GOAL_START_S},
        {
            "goal": "idle RSS < 60 MB",
            "value": f"{rss:.1f} MiB ({rss * 1.048576:.1f} MB)",
            "met": rss < GOAL_IDLE_RSS_MIB,
        },
        {
            "goal": "whoami p95 < 5 ms (one core)",
            "value": f"{p95:.2f} ms",
            "met": p95 < GOAL_WHOAMI_P95_MS,
        },
    ]


# ---------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------
def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


LATENCY_ROWS = [
    ("login, sequential", ("auth", "login_sequential")),
    ("GET /versions, sequential", ("auth", "versions_sequential")),
    ("whoami, sequential", ("auth", "whoami_sequential")),
    ("whoami, sequential (httpx client)", ("auth", "whoami_sequential_httpx")),
    ("whoami, concurrent", ("auth", "whoami_concurrent")),
]


def latency_rows(r: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for label, (a, b) in LATENCY_ROWS:
        m = r.get(a, {}).get(b)
        if m:
            if b == "whoami_concurrent":
                label = f"whoami, {m['connections']} connections"
            rows.append((label, m))
    for key, m in r.get("group_commit", {}).items():
        rows.append((f"account_data PUT, {key.split('_')[1]} writer(s)", m))
    return rows


def print_result(r: dict[str, Any]) -> None:
    e = r["env"]
    s = e.get("server", {})
    print()
    mod = e.get("git_modified_files")
    print(
        f"dendrite-lite foundation bench  {e['date']}  git {e.get('git_head')}"
        + (f" + {len(mod)} modified files" if mod else "")
    )
    print(
        f"{e['nproc']} x {e['cpu_model']}; server Python {s.get('python')}, apsw {s.get('apsw')}"
        f" (SQLite {s.get('sqlite')}); server on CPU {e['server_cpu']}, client on CPU"
        f" {e['client_cpu']} ({e['client']}); data dir on {e.get('data_dir_fs')}"
    )
    print()
    st = r["start"]
    print(
        f"start-up: median {st['median_s']:.3f} s (min {st['min_s']:.3f}, max {st['max_s']:.3f};"
        f" {len(st['samples_s'])} starts: {', '.join(f'{x:.3f}' for x in st['samples_s'])});"
        f" server CPU to ready: median {_f(st.get('server_cpu_median_s'), 3)} s;"
        f" other load on its CPU: max {_f(st.get('foreign_load_server_cpu_max'))}"
    )
    sc = r.get("start_bytecode_cached")
    if sc:
        print(
            f"  (PYTHONDONTWRITEBYTECODE is set here, so those starts compile the project's"
            f" modules; with bytecode cached: median {sc['median_s']:.3f} s,"
            f" min {sc['min_s']:.3f}, max {sc['max_s']:.3f},"
            f" CPU {_f(sc.get('server_cpu_median_s'), 3)} s)"
        )
    ri, ra = r["rss_idle"], r["rss_after_load"]
    print(
        f"RSS: idle after start {ri['VmRSS'] / 1024:.1f} MiB ({ri['Threads']} threads); idle after"
        f" load {ra['VmRSS'] / 1024:.1f} MiB (peak VmHWM {ra['VmHWM'] / 1024:.1f} MiB)"
    )
    phases = r.get("rss_phases", {})
    print(
        "RSS by phase: "
        + ", ".join(f"{k.replace('_', ' ')} {v['VmRSS'] / 1024:.1f} MiB" for k, v in phases.items())
    )
    fs = e.get("fsync")
    if fs:
        print(
            f"fsync of a 4 KiB append on the data dir's disk: p50 {fs['p50_ms']:.3f} ms,"
            f" p95 {fs['p95_ms']:.3f} ms"
        )
    print()
    headers = [
        "requests",
        "n",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "req/s",
        "srv CPU ms/req",
        "srv util",
        "client util",
        "other load srv/cli",
    ]
    rows = []
    for label, m in latency_rows(r):
        rows.append(
            [
                label,
                _f(m.get("n")),
                _f(m.get("p50_ms")),
                _f(m.get("p95_ms")),
                _f(m.get("p99_ms")),
                _f(m.get("requests_per_s"), 0),
                _f(m.get("server_cpu_ms_per_req"), 3),
                _f(m.get("server_cpu_util")),
                _f(m.get("client_cpu_util")),
                f"{_f(m.get('foreign_load_server_cpu'))}/{_f(m.get('foreign_load_client_cpu'))}",
            ]
        )
    print_table(headers, rows)
    print()
    headers = [
        "group commit",
        "writes/s",
        "commits/s",
        "writes/commit",
        "batch p50",
        "batch p95",
        "commit mean ms",
        "commit p95 <=",
        "batch sizes (bucket: commits)",
    ]
    rows = []
    for key, m in r.get("group_commit", {}).items():
        b, c = m["commit_batch_size"], m["commit_seconds"]
        rows.append(
            [
                f"{key.split('_')[1]} writer(s)",
                _f(m["requests_per_s"], 0),
                _f(m["commits_per_s"], 0),
                _f(m["writes_per_commit"], 1),
                f"<={b['p50_le']}",
                f"<={b['p95_le']}",
                _f(c["mean"] * 1000 if c["mean"] is not None else None),
                f"{float(c['p95_le']) * 1000:g} ms" if c["p95_le"] not in (None, "+Inf") else "-",
                " ".join(f"{float(k):g}:{v}" for k, v in b["per_bucket"].items()),
            ]
        )
    print_table(headers, rows)
    print()
    print_table(
        ["goal", "value", "verdict"],
        [[g["goal"], g["value"], "met" if g["met"] else "NOT met"] for g in r["goals"]],
    )
    for label, m in latency_rows(r):
        prof = m.get("profile")
        if prof:
            print(f"\npy-spy, {label} ({prof['samples']} samples, {prof['file']})")
            for key in ("threads", "self_by_package", "self", "project_inclusive"):
                items = "; ".join(f"{k} {v:.1%}" for k, v in prof[key][:10])
                print(f"  {key}: {items}")
    for w in r.get("warnings", []):
        print(f"warning: {w}")
    for err in r.get("errors", []):
        print(f"ERROR: {err}")


def report(files: list[str]) -> None:
    """Markdown tables of several runs side by side (for bench/RESULTS.md)."""
    runs = [json.loads(Path(f).read_text()) for f in files]
    names = [f"run {i + 1}" for i in range(len(runs))]
    mib = 1024.0

    def cells(get: Callable[[dict[str, Any]], str]) -> list[str]:
        out = []
        for r in runs:
            try:
                out.append(get(r))
            except (KeyError, TypeError, IndexError):
                out.append("-")
        return out

    def verdict(i: int) -> str:
        met = [r["goals"][i]["met"] for r in runs]
        return "met" if all(met) else ("NOT met" if not any(met) else "met in some runs")

    for name, r in zip(names, runs, strict=True):
        e = r["env"]
        mod = e.get("git_modified_files") or []
        print(
            f"- {name}: {e['date']}, git {e.get('git_head')}"
            + (f" + {len(mod)} modified tracked files" if mod else "")
            + f", server on CPU {e['server_cpu']}, client on CPU {e['client_cpu']}"
        )
    print()

    def line(
        label: str, get: Callable[[dict[str, Any]], str], goal: str = "", met: str = ""
    ) -> list[str]:
        return [label, *cells(get), goal, met]

    rows = [
        line(
            "start-up: spawn -> first 200 of /versions, median (s)",
            lambda r: f"{r['start']['median_s']:.3f}",
            "< 1.5 s",
            verdict(0),
        ),
        line(
            "start-up: min / max (s)",
            lambda r: f"{r['start']['min_s']:.3f} / {r['start']['max_s']:.3f}",
        ),
        line(
            "start-up: server CPU time until ready, median (s)",
            lambda r: f"{r['start']['server_cpu_median_s']:.3f}",
        ),
        line(
            "start-up with bytecode cached, median (min / max) (s)",
            lambda r: (
                f"{r['start_bytecode_cached']['median_s']:.3f} "
                f"({r['start_bytecode_cached']['min_s']:.3f} / "
                f"{r['start_bytecode_cached']['max_s']:.3f})"
            ),
        ),
        line(
            "idle RSS 3 s after start (MiB)",
            lambda r: f"{r['rss_idle']['VmRSS'] / mib:.1f}",
            "< 60 MB",
            verdict(1),
        ),
    ]
    for phase in runs[0].get("rss_phases", {}):
        if phase != "before_load":
            rows.append(
                line(
                    f"RSS {phase.replace('_', ' ')} (MiB)",
                    lambda r, phase=phase: f"{r['rss_phases'][phase]['VmRSS'] / mib:.1f}",
                )
            )
    rows.append(
        line(
            "idle RSS 3 s after the load (MiB)",
            lambda r: f"{r['rss_after_load']['VmRSS'] / mib:.1f}",
        )
    )
    rows.append(
        line(
            "fsync of a 4 KiB append on the data disk, p50 / p95 (ms)",
            lambda r: f"{r['env']['fsync']['p50_ms']:.2f} / {r['env']['fsync']['p95_ms']:.2f}",
        )
    )
    md_table(["figure", *names, "goal", "verdict"], rows)

    rows = []
    for label, _ in latency_rows(runs[0]):
        for name, r in zip(names, runs, strict=True):
            m = dict(latency_rows(r)).get(label)
            if not m:
                continue
            rows.append(
                [
                    f"{label} ({name})",
                    str(m["n"]),
                    f"{m['p50_ms']:.2f}",
                    f"{m['p95_ms']:.2f}",
                    f"{m['p99_ms']:.2f}",
                    f"{m['requests_per_s']:.0f}",
                    f"{m['server_cpu_ms_per_req']:.3f}",
                    f"{m['server_cpu_util']:.2f}",
                    f"{m['client_cpu_util']:.2f}",
                    f"{_f(m.get('foreign_load_server_cpu'))} / "
                    f"{_f(m.get('foreign_load_client_cpu'))}",
                ]
            )
    md_table(
        [
            "requests",
            "n",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "req/s",
            "server CPU ms/req",
            "server CPU util",
            "client CPU util",
            "other load srv / cli CPU",
        ],
        rows,
    )

    rows = []
    for key in runs[0].get("group_commit", {}):
        for name, r in zip(names, runs, strict=True):
            m = r["group_commit"].get(key)
            if not m:
                continue
            b, c = m["commit_batch_size"], m["commit_seconds"]
            rows.append(
                [
                    f"{key.split('_')[1]} ({name})",
                    f"{m['requests_per_s']:.0f}",
                    f"{m['p50_ms']:.2f} / {m['p95_ms']:.2f}",
                    f"{m['commits_per_s']:.0f}",
                    f"{m['writes_per_commit']:.1f}",
                    " ".join(f"{float(k):g}:{v}" for k, v in b["per_bucket"].items()),
                    f"{c['mean'] * 1000:.2f}",
                    " ".join(f"{float(k) * 1000:g}:{v}" for k, v in c["per_bucket"].items()),
                ]
            )
    md_table(
        [
            "writers",
            "writes/s",
            "PUT p50 / p95 ms",
            "commits/s",
            "writes/commit",
            "batch sizes (bucket <=: commits)",
            "commit mean ms",
            "commit time (bucket <= ms: commits)",
        ],
        rows,
    )


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="short run (about 30 s) for a smoke test")
    p.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    p.add_argument("--report", nargs="+", metavar="RUN.json", help="print a markdown table of runs")
    p.add_argument(
        "--server-exe", help="the dendrite-lite executable (default: .venv/bin/dendrite-lite)"
    )
    p.add_argument("--server-cpu", type=int, default=0, help="pin the server here (-1: no pinning)")
    p.add_argument(
        "--client-cpu", type=int, default=1, help="pin this client here (-1: no pinning)"
    )
    p.add_argument("--starts", type=int, help="server starts to time (default 5, quick 3)")
    p.add_argument("--idle-wait", type=float, help="seconds to wait before reading idle RSS (3)")
    p.add_argument("--logins", type=int, help="sequential logins (200, quick 20)")
    p.add_argument(
        "--whoami-requests", type=int, help="sequential whoami requests (2000, quick 300)"
    )
    p.add_argument("--concurrency", type=int, default=32, help="connections for concurrent whoami")
    p.add_argument(
        "--concurrent-seconds", type=float, help="concurrent whoami duration (10, quick 3)"
    )
    p.add_argument(
        "--writers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 10, 100],
        help="concurrent account-data writer levels (1,10,100)",
    )
    p.add_argument("--write-seconds", type=float, help="duration of each writer level (5, quick 2)")
    p.add_argument("--tmp-dir", help="where the throw-away data directory goes (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the data directory and server log")
    p.add_argument(
        "--py-spy",
        metavar="DIR",
        help="profile the server with py-spy during each measured phase (collapsed stacks here)",
    )
    p.add_argument("--py-spy-exe", help="the py-spy executable (default: PATH, then .venv/bin)")
    args = p.parse_args()
    if args.report:
        report(args.report)
        return 0
    q = args.quick
    for name, full, quick in [
        ("starts", 5, 3),
        ("idle_wait", 3.0, 2.0),
        ("logins", 200, 20),
        ("whoami_requests", 2000, 300),
        ("concurrent_seconds", 10.0, 3.0),
        ("write_seconds", 5.0, 2.0),
    ]:
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    try:
        result = run(args)
    except BenchError as e:
        print(f"\n*** bench_foundation FAILED: {e}", file=sys.stderr)
        return 1
    print_result(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
