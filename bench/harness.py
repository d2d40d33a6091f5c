"""Shared pieces of the bench scripts: statistics, /proc counters, the raw HTTP client,
py-spy profiling, and (for the side-by-side benches) the servers under test.

Used by bench_foundation.py (primitives only) and by bench_rooms.py, bench_sync.py and
bench_e2ee.py, which run the same workload against dendrite-lite and Synapse, one server at
a time, each in a fresh data directory, pinned to --server-cpu while the client runs on
--client-cpu.  Standard library + uvloop (if importable); nothing here imports the
project or Synapse: both are separate processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
VERSIONS = "/_matrix/client/versions"
CS = "/_matrix/client/v3"
USER_AGENT = "dendrite-lite-bench/1"
SERVERS = ("dendrite", "synapse")
LABEL = {"dendrite": "dendrite-lite", "synapse": "Synapse"}


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# statistics (same definitions as the shared yardstick, mxbench.py)
# ---------------------------------------------------------------------------------------
def percentile(sorted_vals: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def summarize(samples_s: list[float]) -> dict[str, Any]:
    v = sorted(x * 1000.0 for x in samples_s)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "min_ms": round(v[0], 3),
        "p50_ms": round(percentile(v, 50), 3),
        "p95_ms": round(percentile(v, 95), 3),
        "p99_ms": round(percentile(v, 99), 3),
        "max_ms": round(v[-1], 3),
        "mean_ms": round(sum(v) / len(v), 3),
    }


# ---------------------------------------------------------------------------------------
# /proc counters
# ---------------------------------------------------------------------------------------
class Proc:
    """Memory and CPU counters of a process (all its threads), from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tck = os.sysconf("SC_CLK_TCK")
        self.read()

    def read(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("VmRSS", "VmHWM", "Threads"):
                        out[k] = int(v.split()[0])
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # fields[0] is field 3 (state); utime is field 14, stime field 15
            out["cpu_ms"] = (int(fields[11]) + int(fields[12])) * 1000.0 / self.tck
        except OSError as e:
            raise BenchError(f"cannot read /proc/{self.pid}: {e}") from e
        # Bytes the process dirtied for the storage layer (WAL appends, checkpoints):
        # unlike time, a count the host's speed does not move.
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{self.pid}/io") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "write_bytes":
                    out["write_bytes"] = int(v)
        return out


def host_cpu() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals[:8]]
                out[name] = (sum(v) - v[3] - v[4], sum(v))  # minus idle and iowait
    return out


def host_cpu_busy(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> dict[str, float]:
    out = {}
    for cpu, (busy0, total0) in a.items():
        if cpu in b:
            busy1, total1 = b[cpu]
            out[cpu] = (busy1 - busy0) / max(1, total1 - total0)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------
# the HTTP/1.1 client
# ---------------------------------------------------------------------------------------
class RawConn:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a few µs of client CPU per
    request, so that the one client core never limits the server's throughput."""

    def __init__(self, port: int, token: str | None = None, agent: str = USER_AGENT) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.headers = f"Host: 127.0.0.1:{port}\r\nUser-Agent: {agent}\r\n"
        if token:
            self.headers += f"Authorization: Bearer {token}\r\n"

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        reused = self.writer is not None
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\n{self.headers}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as e:
            # The server closed an idle keep-alive connection (uvicorn: after 5 s) before
            # reading this request: nothing was processed, so send it again on a new one.
            if not reused or (isinstance(e, asyncio.IncompleteReadError) and e.partial):
                raise
            await self.aclose()
            return await self.request(method, path, body)
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length: int | None = None
        chunked = close = False
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding":
                chunked = b"chunked" in v.lower()
            elif k == b"connection":
                close = v.strip().lower() == b"close"
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:
            data = await self.reader.read()
            close = True
        if close:
            await self.aclose()
        return status, data

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def run_async(coro: Awaitable[Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# py-spy
# ---------------------------------------------------------------------------------------
class Profiler:
    """py-spy samples a server process during a phase; the collapsed stacks go to
    DIR/<phase>.txt and the top functions into the JSON.  --gil: only samples of the thread
    holding the GIL, i.e. Python CPU time (py-spy's idle detection counts threads parked in
    queue.get as busy here); --nonblocking: do not stop the server to sample it.  Profile
    in a separate run: the figures of a profiled run are a little worse."""

    def __init__(self, popen: subprocess.Popen[bytes], out: Path) -> None:
        self.popen, self.out = popen, out

    @classmethod
    def start(
        cls, pid: int, out_dir: str | Path, phase: str, exe: str | None = None, rate: int = 100
    ) -> Profiler:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / (re.sub(r"[^A-Za-z0-9]+", "_", phase).strip("_") + ".txt")
        exe = exe or shutil.which("py-spy") or str(REPO / ".venv/bin/py-spy")
        cmd = [exe, "record", "--pid", str(pid), "--format", "raw"]
        if not os.environ.get("BENCH_PY_SPY_LINES"):  # line numbers: BENCH_PY_SPY_LINES=1
            cmd.append("--nolineno")
        cmd += ["--threads", "--gil", "--nonblocking", "--rate", str(rate), "--output", str(out)]
        return cls(_attach(cmd, "py-spy"), out)

    def stop(self) -> dict[str, Any] | None:
        _interrupt(self.popen, 30)
        if not self.out.exists():
            return None
        return summarize_profile(self.out)


class PerfRecorder:
    """`perf record` of a server process during a phase (--perf DIR): unlike py-spy it
    sees every thread's CPU, SQLite's and the kernel's included, which is where a
    delivery's time goes once Python's share is small.  DIR/<phase>.data; read it with
    `perf report -i DIR/<phase>.data --no-children --sort dso,sym`."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen

    @classmethod
    def start(cls, pid: int, out_dir: str | Path, phase: str) -> PerfRecorder:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / (re.sub(r"[^A-Za-z0-9]+", "_", phase).strip("_") + ".data")
        cmd = ["perf", "record", "-q", "-g", "-F", "2000", "-p", str(pid), "-o", str(out)]
        return cls(_attach(cmd, "perf"))

    def stop(self) -> None:
        _interrupt(self.popen, 60)


def _attach(cmd: list[str], tool: str) -> subprocess.Popen[bytes]:
    """Start a profiler attaching to the server, and give it time to attach before the
    phase starts."""
    popen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.3)
    if popen.poll() is not None:
        err = popen.stderr.read().decode(errors="replace") if popen.stderr else ""
        raise BenchError(f"{tool} failed to start: {err.strip()[:500]}")
    return popen


def _interrupt(popen: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a profiler the way Ctrl-C does (it writes its output then)."""
    popen.send_signal(signal.SIGINT)
    try:
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def package_of(frame: str) -> str:
    """'fn (litestar/routes/http.py)' -> 'litestar'; stdlib modules by their module."""
    m = re.search(r"\(([^)]*)\)$", frame)
    path = m.group(1) if m else frame
    top = path.split("/")[0]
    return top[:-3] if top.endswith(".py") else top


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """From py-spy's collapsed stacks ("thread (..);fn (file);fn (file) COUNT"): the share of
    samples per thread, per leaf function (self), per package of the leaf, and the inclusive
    share of the project's own functions (dendrite_lite/, cli/)."""
    own: dict[str, int] = {}
    packages: dict[str, int] = {}
    incl: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        frames = stack.split(";")
        total += n
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        threads[thread] = threads.get(thread, 0) + n
        funcs = frames[1:] or frames
        own[funcs[-1]] = own.get(funcs[-1], 0) + n
        pkg = package_of(funcs[-1])
        packages[pkg] = packages.get(pkg, 0) + n
        for f in set(funcs):
            if ("(dendrite_lite/" in f or "(cli/" in f) and not f.startswith(("main (", "run (")):
                incl[f] = incl.get(f, 0) + n

    def shares(d: dict[str, int]) -> list[list[Any]]:
        ranked = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return [[k, round(v / total, 3)] for k, v in ranked]

    return {
        "file": str(path),
        "samples": total,
        "threads": shares(threads),
        "self": shares(own),
        "self_by_package": shares(packages),
        "project_inclusive": shares(incl),
    }


# ---------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------
def fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # nan
            return "-"
        return f"{v:.{nd}f}"
    return str(v)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def md_table(headers: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" if i == 0 else "--:" for i in range(len(headers))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


# ---------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------
def fsync_probe(directory: Path, n: int = 200) -> dict[str, Any]:
    """How long one 4 KiB append + fsync takes where the database lives: the floor of a
    synchronous=FULL commit on this disk."""
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
    return summarize(samples)


def host_probe(rounds: int = 3) -> dict[str, float]:
    """How fast this host is right now, in two ways: random reads over 32 MiB of pointers
    (bound by cache misses, as a server with cold caches between requests is) and a JSON
    round trip of a small document (bound by the core). The machine is a shared VM: on
    2026-11-29 a similar walk (300,000 reads) went from 190 to 350 ms within hours while
    the second stayed put, and every latency of the day moved with the first. The best
    of `rounds`, in ms."""
    rng = random.Random(1)
    table = list(range(4_000_000))
    order = [rng.randrange(len(table)) for _ in range(200_000)]
    doc = {
        f"!r{i}:x": [{"type": "m.room.message", "n": j, "body": "x" * 50} for j in range(10)]
        for i in range(300)
    }
    walk, codec = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        total = 0
        for i in order:
            total += table[i]
        walk.append(time.perf_counter() - t)
        t = time.perf_counter()
        json.loads(json.dumps(doc))
        codec.append(time.perf_counter() - t)
    return {"random_access_ms": round(min(walk) * 1000, 1), "json_ms": round(min(codec) * 1000, 2)}


def filesystem_of(path: Path) -> str | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError, IndexError):
        return (
            subprocess.run(["df", "-T", str(path)], check=True, capture_output=True, text=True)
            .stdout.splitlines()[-1]
            .split()[1]
        )
    return None


def git_info() -> tuple[str | None, list[str] | None]:
    """HEAD's short hash and the tracked files changed in the working tree."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        return head, [line[3:] for line in status if line.strip()]
    return None, None


def cpu_model() -> str | None:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def environment(args: argparse.Namespace) -> dict[str, Any]:
    head, dirty = git_info()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "git_head": head,
        "git_modified_files": dirty,
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "client_python": platform.python_version(),
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "client": "raw asyncio streams" + (" + uvloop" if has_uvloop() else ""),
        "quick": args.quick,
        "argv": sys.argv[1:],
    }


# ---------------------------------------------------------------------------------------
# the servers under test
# ---------------------------------------------------------------------------------------
def find_dendrite_exe(arg: str | None = None) -> Path:
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


def interpreter_of(exe: Path) -> str:
    """The python that runs `exe` (a venv's console script or the --git-ref launcher:
    its #! line), so that the figures name the interpreter the server ran on."""
    with contextlib.suppress(OSError):
        with exe.open("rb") as f:
            first = f.readline(512)
        if first.startswith(b"#!"):
            python = first[2:].strip().decode(errors="replace")
            if Path(python).is_file():
                return python
    return str(REPO / ".venv" / "bin" / "python")


def set_toml(path: Path, section: str, key: str, value: str) -> None:
    """Set `key = value` (value already in TOML syntax) in [section] of a config.toml."""
    lines = path.read_text().splitlines()
    current = ""
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            current = s[1:-1].strip()
        elif current == section and not s.startswith("#") and s.split("=", 1)[0].strip() == key:
            lines[i] = f"{key} = {value}"
            path.write_text("\n".join(lines) + "\n")
            return
    raise BenchError(f"no {key} in [{section}] of {path}")


LAUNCHER = """#!{python}
# dendrite-lite from an export of a git ref (bench --git-ref): the venv's editable install
# maps dendrite_lite to the working tree, so drop that finder and put the export first.
import json, runpy, sys
SRC = {src!r}
sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") != "_EditableFinder"]
sys.path.insert(0, SRC)
if sys.argv[1:2] == ["run"]:  # what `dendrite-lite run` does, minus its exec
    sys.argv = ["dendrite_lite.server", *sys.argv[2:]]
    runpy.run_module("dendrite_lite.server", run_name="__main__", alter_sys=True)
elif sys.argv[1:2] == ["--where"]:
    import dendrite_lite
    print(json.dumps({{"dendrite_lite": dendrite_lite.__file__}}))
else:
    from dendrite_lite.cli.main import main
    sys.exit(main())
"""


def export_ref(ref: str, root: Path, python: str | None = None) -> tuple[Path, str]:
    """`git archive REF` into root/src, and a launcher that runs the server from there
    (with `python`, a venv's interpreter with the project's dependencies, or this
    repository's venv). Returns (launcher, full commit hash)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    src = root / "src"
    src.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise BenchError(f"git archive {ref} failed")
    # the package maps dendrite_lite.cli to ./cli (pyproject's package-dir)
    if (src / "cli").is_dir() and not (src / "dendrite_lite" / "cli").exists():
        (src / "dendrite_lite" / "cli").symlink_to(src / "cli", target_is_directory=True)
    launcher = root / "dendrite-lite-at-ref"
    python = python or str(REPO / ".venv" / "bin" / "python")
    launcher.write_text(LAUNCHER.format(python=python, src=str(src)))
    launcher.chmod(0o755)
    where = json.loads(
        subprocess.run(
            [str(launcher), "--where"], check=True, capture_output=True, text=True
        ).stdout
    )["dendrite_lite"]
    if not where.startswith(str(src)):
        raise BenchError(f"the launcher imports dendrite_lite from {where}, not from {src}")
    log(f"dendrite-lite from git {ref} = {commit[:10]} (exported to {src})")
    return launcher, commit


class Target:
    """One server under test: a fresh data directory, a port, a pinned process."""

    kind = ""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root = root
        self.args = args
        self.data_dir = root / self.kind
        self.port = free_port()
        self.cpu: int | None = args.server_cpu
        self.presence = args.presence == "on"
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path = root / f"{self.kind}.log"
        self.proc: Proc | None = None
        self.start_s: float | None = None
        self.info: dict[str, Any] = {}

    # -- implemented by the two kinds ------------------------------------------------------
    def prepare(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "homeserver.db"

    # -- common ------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return LABEL[self.kind]

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, timeout: float = 180.0) -> float:
        cpu = self.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        logf = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        t0 = time.perf_counter()
        self.popen = subprocess.Popen(
            self.command(),
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=pin,
            cwd=self.data_dir,
            env=self.environment(),
        )
        logf.close()
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.popen.poll() is not None:
                raise BenchError(
                    f"{self.label} exited with {self.popen.returncode} during start-up:\n"
                    + self.log_tail()
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
                conn.request("GET", VERSIONS)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    self.start_s = time.perf_counter() - t0
                    self.proc = Proc(self.popen.pid)
                    log(f"{self.label} (pid {self.pid}, CPU {cpu}) up after {self.start_s:.2f} s")
                    return self.start_s
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise BenchError(f"{self.label} did not answer 200 within {timeout} s:\n" + self.log_tail())

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def db_size(self) -> dict[str, int]:
        """The database's size: files on disk (main + WAL) and the logical size
        ((page_count - freelist_count) * page_size, read through the WAL by a read-only
        connection: what the data occupies once checkpointed)."""
        out: dict[str, int] = {}
        main = self.db_path
        wal = Path(str(main) + "-wal")
        out["file_bytes"] = main.stat().st_size if main.exists() else 0
        out["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
        con = sqlite3.connect(f"file:{main}?mode=ro", uri=True, timeout=30)
        try:
            page_size = con.execute("PRAGMA page_size").fetchone()[0]
            pages = con.execute("PRAGMA page_count").fetchone()[0]
            free = con.execute("PRAGMA freelist_count").fetchone()[0]
        finally:
            con.close()
        out["page_size"] = page_size
        out["logical_bytes"] = (pages - free) * page_size
        out["allocated_bytes"] = pages * page_size
        return out


class DendriteTarget(Target):
    kind = "dendrite"

    def prepare(self) -> None:
        exe = find_dendrite_exe(getattr(self.args, "server_exe", None))
        self.exe = exe
        subprocess.run(
            [
                str(exe),
                "init",
                "--data-dir",
                str(self.data_dir),
                "--server-name",
                "localhost",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--open-registration",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        cfg = self.data_dir / "config.toml"
        set_toml(cfg, "rate_limits", "enabled", "false")
        set_toml(cfg, "presence", "enabled", "true" if self.presence else "false")
        for item in getattr(self.args, "config", None) or []:
            name, sep, value = item.partition("=")
            section, dot, key = name.strip().partition(".")
            if not sep or not dot:
                raise BenchError(f"--config {item!r}: expected SECTION.KEY=VALUE")
            set_toml(cfg, section, key, value.strip())
            self.info.setdefault("config", {})[name.strip()] = value.strip()
        if getattr(self.args, "git_ref", None):
            self.info["git_ref"] = self.args.git_ref
            self.info["git_commit"] = getattr(self.args, "git_commit", None)
        probe = (
            "import apsw, sys, json, importlib.metadata as md;"
            "print(json.dumps({'python': sys.version.split()[0],"
            " 'python_base': sys._base_executable, 'apsw': apsw.apsw_version(),"
            " 'sqlite': apsw.sqlite_lib_version(), 'litestar': md.version('litestar'),"
            " 'uvicorn': md.version('uvicorn')}))"
        )
        with contextlib.suppress(OSError, subprocess.CalledProcessError, json.JSONDecodeError):
            self.info.update(
                json.loads(
                    subprocess.run(
                        [interpreter_of(exe), "-c", probe],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
            )
        self.info["presence"] = self.presence

    def command(self) -> list[str]:
        # `run` execs `python -m dendrite_lite.server`: the PID stays the server's
        return [str(self.exe), "run", "--data-dir", str(self.data_dir)]

    def environment(self) -> dict[str, str]:
        # What `dendrite-lite run` sets before its exec (cli/entry.py); the --git-ref
        # launcher runs the server without that exec, so it is set here for both.
        malloc = {
            "MALLOC_ARENA_MAX": "2",
            "MALLOC_MMAP_THRESHOLD_": "131072",
            "MALLOC_TRIM_THRESHOLD_": "131072",
        }
        return {**malloc, **os.environ}


class SynapseTarget(Target):
    kind = "synapse"

    def prepare(self) -> None:
        syn = load_synapse_module()
        self.syn = syn
        syn.ensure_venv()
        syn.generate_config(self.data_dir, self.port, presence=self.presence)
        self.info = {"synapse": syn.installed_version(), "presence": self.presence}
        with contextlib.suppress(OSError, subprocess.CalledProcessError, json.JSONDecodeError):
            self.info.update(
                json.loads(
                    subprocess.run(
                        [
                            str(syn.PY),
                            "-c",
                            "import sys, sqlite3, json; print(json.dumps({'python':"
                            " sys.version.split()[0], 'sqlite': sqlite3.sqlite_version}))",
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
            )

    def command(self) -> list[str]:
        return [str(part) for part in self.syn.command(self.data_dir)]


def load_synapse_module() -> Any:
    """bench/synapse.py (by path: its name must not be mistaken for the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_synapse", BENCH_DIR / "synapse.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TARGETS: dict[str, type[Target]] = {"dendrite": DendriteTarget, "synapse": SynapseTarget}


@contextlib.contextmanager
def launched(kind: str, root: Path, args: argparse.Namespace) -> Iterator[Target]:
    t = TARGETS[kind](root, args)
    t.prepare()
    t.start()
    try:
        yield t
    finally:
        t.stop()


# ---------------------------------------------------------------------------------------
# measurement of one phase
# ---------------------------------------------------------------------------------------
@dataclass
class Bench:
    """What a workload needs: the args, the target, warnings and errors."""

    args: argparse.Namespace
    target: Target
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.target.port

    def error(self, msg: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(msg)
        log(f"ERROR {msg}")

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log(f"WARNING {msg}")


class Meter:
    """Counters around one measured phase: server CPU (utime+stime of the server process),
    client CPU (this process), wall time, other load on both pinned CPUs, and optionally a
    py-spy profile of dendrite-lite (--py-spy DIR)."""

    def __init__(self, b: Bench, name: str) -> None:
        self.b, self.name = b, name
        assert b.target.proc is not None
        self.proc = b.target.proc
        self.profiler: Profiler | None = None
        a = b.args
        if getattr(a, "py_spy", None) and b.target.kind == "dendrite":
            rate = getattr(a, "py_spy_rate", 100)
            self.profiler = Profiler.start(b.target.pid, a.py_spy, name, a.py_spy_exe, rate)
        self.perf: PerfRecorder | None = None
        if getattr(a, "perf", None) and b.target.kind == "dendrite":
            self.perf = PerfRecorder.start(b.target.pid, a.perf, name)
        self.p0 = self.proc.read()
        self.h0 = host_cpu()
        self.c0 = time.process_time()
        self.t0 = time.perf_counter()

    def finish(
        self, lat: list[float], requests: int, errors: list[str] | None = None
    ) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        cpu_client = time.process_time() - self.c0
        p1 = self.proc.read()
        h1 = host_cpu()
        profile = self.profiler.stop() if self.profiler else None
        if self.perf is not None:
            self.perf.stop()
        errors = errors or []
        res = summarize(lat)
        server_cpu = p1["cpu_ms"] - self.p0["cpu_ms"]
        res.update(
            {
                "requests": requests,
                "wall_s": round(wall, 3),
                "requests_per_s": round(requests / wall, 1) if wall else None,
                "server_cpu_ms": round(server_cpu, 1),
                "server_cpu_ms_per_req": round(server_cpu / requests, 3) if requests else None,
                "server_cpu_util": round(server_cpu / 1000.0 / wall, 3) if wall else None,
                "client_cpu_util": round(cpu_client / wall, 3) if wall else None,
                "errors": len(errors),
                "rss_kib": p1.get("VmRSS"),
            }
        )
        if "write_bytes" in p1 and "write_bytes" in self.p0 and requests:
            written = p1["write_bytes"] - self.p0["write_bytes"]
            res["server_write_kib_per_req"] = round(written / 1024 / requests, 1)
        busy = host_cpu_busy(self.h0, h1)
        a = self.b.args
        for role, cpu, own in (
            ("server", a.server_cpu, res["server_cpu_util"]),
            ("client", a.client_cpu, res["client_cpu_util"]),
        ):
            if cpu is not None and f"cpu{cpu}" in busy and own is not None:
                other = max(0.0, round(busy[f"cpu{cpu}"] - own, 3))
                res[f"foreign_load_{role}_cpu"] = other
                if other > 0.1:
                    self.b.warn(
                        f"{self.b.target.kind} {self.name}: other processes used {other:.2f}"
                        f" of the {role}'s CPU {cpu}"
                    )
        if profile:
            res["profile"] = profile
        if errors:
            self.b.error(
                f"{self.b.target.kind} {self.name}: {len(errors)} errors, e.g. {errors[0]}"
            )
        if res["client_cpu_util"] and res["client_cpu_util"] > 0.7:
            self.b.warn(
                f"{self.name}: the client used {res['client_cpu_util']:.2f} of its core;"
                " it may be the bottleneck"
            )
        log(
            f"{self.b.target.kind} {self.name}: n={res.get('n')} p50={res.get('p50_ms')}"
            f" p95={res.get('p95_ms')} ms, {res['requests_per_s']}/s, srv"
            f" {res['server_cpu_ms_per_req']} ms/req (util {res['server_cpu_util']}), client util"
            f" {res['client_cpu_util']}, other load {res.get('foreign_load_server_cpu')}"
            f"/{res.get('foreign_load_client_cpu')}"
        )
        return res


async def wait_quiet(b: Bench, name: str) -> float:
    """Before a measured phase: wait (at most --wait-quiet s) until, for 3 s in a row, the
    pinned CPUs are busy with nothing but the server (and this client) beyond
    --quiet-threshold.  The machine is shared; a phase that starts while someone's test
    suite runs is noise.  Returns the seconds waited."""
    a = b.args
    limit = getattr(a, "wait_quiet", 0) or 0
    if limit <= 0 or b.target.proc is None:
        return 0.0
    cpus = [c for c in (a.server_cpu, a.client_cpu) if c is not None]
    if not cpus:
        return 0.0
    t0 = time.perf_counter()
    quiet = 0
    while time.perf_counter() - t0 < limit:
        h0, p0, c0 = host_cpu(), b.target.proc.read()["cpu_ms"], time.process_time()
        await asyncio.sleep(1.0)
        h1, p1, c1 = host_cpu(), b.target.proc.read()["cpu_ms"], time.process_time()
        busy = host_cpu_busy(h0, h1)
        own = {a.server_cpu: (p1 - p0) / 1000.0, a.client_cpu: c1 - c0}
        other = max(busy.get(f"cpu{c}", 0.0) - own.get(c, 0.0) for c in cpus)
        quiet = quiet + 1 if other < a.quiet_threshold else 0
        if quiet >= 3:
            break
    waited = time.perf_counter() - t0
    if quiet < 3:
        b.warn(f"{name}: the machine did not become quiet within {limit:.0f} s; measuring anyway")
    elif waited > 4:
        log(f"{b.target.kind} {name}: waited {waited:.0f} s for a quiet machine")
    return round(waited, 1)


ReqFn = Callable[[RawConn, int, int], Awaitable[tuple[int, bytes]]]


async def measure(
    b: Bench,
    name: str,
    conns: list[RawConn],
    req: ReqFn,
    *,
    count: int | None = None,
    seconds: float | None = None,
    warmup: int = 0,
    check: Callable[[int, bytes], str | None] | None = None,
) -> dict[str, Any]:
    """Closed loop: every connection sends its next request as soon as the previous one
    answered, until `count` requests per connection, or `seconds`, whichever comes first.
    `req(conn, i, k)`: connection i's k-th request (k < 0: warm-up).  A non-2xx answer, or
    one `check` objects to, is an error (not a latency sample)."""
    assert count is not None or seconds is not None

    async def warm(i: int, c: RawConn) -> None:
        for k in range(warmup):
            status, body = await req(c, i, -1 - k)
            if not 200 <= status < 300:
                raise BenchError(f"{name} warm-up: {status} {body[:300]!r}")

    waited = await wait_quiet(b, name)
    if warmup:
        await asyncio.gather(*(warm(i, c) for i, c in enumerate(conns)))
    lat: list[float] = []
    errors: list[str] = []
    m = Meter(b, name)
    deadline = m.t0 + seconds if seconds is not None else None
    hard_stop = m.t0 + (seconds or 0) + 900.0  # a hung server cannot hold the run forever

    async def worker(i: int, c: RawConn) -> None:
        k = 0
        while k < (count if count is not None else 1 << 62):
            now = time.perf_counter()
            if (deadline is not None and now >= deadline) or now >= hard_stop:
                break
            s = time.perf_counter()
            status, body = await req(c, i, k)
            e = time.perf_counter()
            problem = None if 200 <= status < 300 else f"{status} {body[:200]!r}"
            if problem is None and check is not None:
                problem = check(status, body)
            if problem is None:
                lat.append(e - s)
            else:
                errors.append(problem)
            k += 1

    await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    res = m.finish(lat, len(lat) + len(errors), errors)
    res["connections"] = len(conns)
    res["waited_for_quiet_s"] = waited
    return res


# ---------------------------------------------------------------------------------------
# a small Matrix client for setting up (not for measured requests)
# ---------------------------------------------------------------------------------------
def q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Api:
    """JSON requests on one keep-alive connection; any non-2xx is a BenchError."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self.conn = RawConn(port, token)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok: tuple[int, ...] = (),
    ) -> Any:
        raw = dumps(body) if body is not None else None
        status, data = await asyncio.wait_for(self.conn.request(method, path, raw), 300.0)
        if not (200 <= status < 300 or status in ok):
            raise BenchError(f"{method} {path[:120]} -> {status} {data[:400]!r}")
        return json.loads(data) if data else {}

    async def aclose(self) -> None:
        await self.conn.aclose()


@dataclass
class User:
    localpart: str
    user_id: str
    access_token: str
    device_id: str
    password: str


async def register(port: int, localpart: str, password: str) -> User:
    """POST /register with m.login.dummy (one round trip more if the server wants a UIA
    session first, as Synapse may)."""
    api = Api(port)
    try:
        body: dict[str, Any] = {
            "username": localpart,
            "password": password,
            "auth": {"type": "m.login.dummy"},
            "initial_device_display_name": "bench",
        }
        d = await api.call("POST", f"{CS}/register", body, ok=(401,))
        if "access_token" not in d:
            session = d.get("session")
            if not session:
                raise BenchError(f"register {localpart}: {d}")
            body["auth"]["session"] = session
            d = await api.call("POST", f"{CS}/register", body)
        return User(localpart, d["user_id"], d["access_token"], d["device_id"], password)
    finally:
        await api.aclose()


async def login(port: int, user: User, device_name: str = "bench") -> User:
    api = Api(port)
    try:
        d = await api.call(
            "POST",
            f"{CS}/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user.localpart},
                "password": user.password,
                "initial_device_display_name": device_name,
            },
        )
        return User(user.localpart, d["user_id"], d["access_token"], d["device_id"], user.password)
    finally:
        await api.aclose()


async def bounded(coros: list[Awaitable[Any]], limit: int, label: str = "") -> list[Any]:
    """Run coroutines at most `limit` at a time, in order; log progress every ~10 %."""
    sem = asyncio.Semaphore(limit)
    done = 0
    total = len(coros)
    step = max(1, total // 10)
    t0 = time.perf_counter()

    async def one(c: Awaitable[Any]) -> Any:
        nonlocal done
        async with sem:
            r = await c
        done += 1
        if label and (done % step == 0 or done == total):
            log(f"  {label}: {done}/{total} ({time.perf_counter() - t0:.1f} s)")
        return r

    return await asyncio.gather(*(one(c) for c in coros))


async def register_many(port: int, prefix: str, n: int, concurrency: int = 4) -> list[User]:
    suffix = "".join(random.choices("abcdefghijklmnopqrstuvwxyz", k=5))
    return await bounded(
        [register(port, f"{prefix}{suffix}{i}", f"bench-password-{i}") for i in range(n)],
        concurrency,
        f"register {n} users",
    )


# ---------------------------------------------------------------------------------------
# running a workload against each server, and the comparison
# ---------------------------------------------------------------------------------------
def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--servers",
        default="dendrite,synapse",
        help="comma list of servers to run, in this order (default: dendrite,synapse)",
    )
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    p.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    p.add_argument("--report", nargs="+", metavar="RUN.json", help="markdown tables of runs")
    p.add_argument("--presence", choices=["on", "off"], default="on", help="presence (default on)")
    p.add_argument("--server-exe", help="the dendrite-lite executable (default .venv/bin)")
    p.add_argument(
        "--git-ref",
        help="run dendrite-lite as of this commit (exported with git archive), not the"
        " working tree, which others may be editing (e.g. HEAD)",
    )
    p.add_argument("--server-cpu", type=int, default=0, help="pin servers here (-1: no pinning)")
    p.add_argument("--client-cpu", type=int, default=1, help="pin this client here (-1: none)")
    p.add_argument("--tmp-dir", help="where the throw-away data directories go ($TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=180.0,
        help="before each measured phase, wait up to this many seconds for other load on"
        " the pinned CPUs to stop (180; 0: do not wait)",
    )
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.05,
        help="other load counted as quiet (0.05 of a CPU)",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="set a key of dendrite-lite's config.toml (a TOML value, e.g."
        " database.reader_threads=1); repeatable",
    )
    p.add_argument("--py-spy", metavar="DIR", help="profile dendrite-lite per phase into DIR")
    p.add_argument("--perf", metavar="DIR", help="perf record dendrite-lite per phase into DIR")
    p.add_argument("--py-spy-exe", help="the py-spy executable (default: PATH, then .venv/bin)")
    p.add_argument("--py-spy-rate", type=int, default=100, help="py-spy samples per second (100)")


Workload = Callable[[Bench], Awaitable[dict[str, Any]]]


def run_servers(args: argparse.Namespace, workload: Workload, bench_name: str) -> dict[str, Any]:
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in SERVERS:
            raise BenchError(f"unknown server {s!r} (choose from {', '.join(SERVERS)})")
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
    env = environment(args)
    result: dict[str, Any] = {"bench": bench_name, "env": env, "servers": {}}
    root = Path(tempfile.mkdtemp(prefix=f"{bench_name}-", dir=args.tmp_dir))
    env["data_dir_fs"] = filesystem_of(root)
    if getattr(args, "git_ref", None) and "dendrite" in servers:
        launcher, args.git_commit = export_ref(args.git_ref, root)
        args.server_exe = str(launcher)
        env["dendrite_git_ref"] = args.git_ref
        env["dendrite_git_commit"] = args.git_commit
    env["fsync"] = fsync_probe(root)
    log(f"fsync of a 4 KiB append: p50 {env['fsync']['p50_ms']} ms; data under {root}")
    env["host_probe"] = host_probe()
    log(f"host probe: {env['host_probe']}")
    try:
        for kind in servers:
            t0 = time.perf_counter()
            t = TARGETS[kind](root, args)
            t.prepare()
            b = Bench(args, t)
            out: dict[str, Any] = {"info": t.info}
            try:
                t.start()
                out["start_s"] = round(t.start_s or 0, 3)
                out["rss_kib_start"] = t.proc.read()["VmRSS"] if t.proc else None
                out.update(run_async(workload(b)))
                out["rss_kib_end"] = t.proc.read()["VmRSS"] if t.proc else None
                out["idle_after"] = idle_cpu(b)
            except BenchError as e:
                b.error(f"{kind}: {e}")
                log(f"{kind} log tail:\n{t.log_tail()}")
            finally:
                t.stop()
            out["errors"] = b.errors
            out["warnings"] = b.warnings
            out["total_s"] = round(time.perf_counter() - t0, 1)
            result["servers"][kind] = out
            log(f"{t.label} done in {out['total_s']} s")
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return result


@dataclass
class Row:
    """One line of the comparison: a figure of both servers.  better: "lower" (latency,
    CPU) or "higher" (throughput).  ratio > 1 always means dendrite-lite is better."""

    label: str
    get: Callable[[dict[str, Any]], Any]
    better: str = "lower"
    nd: int = 2


def row_values(row: Row, r: dict[str, Any]) -> dict[str, Any]:
    vals: dict[str, Any] = {}
    for kind, res in r["servers"].items():
        try:
            v = row.get(res)
        except (KeyError, TypeError, IndexError, ZeroDivisionError):
            v = None
        vals[kind] = v
    d, s = vals.get("dendrite"), vals.get("synapse")
    ratio = None
    if isinstance(d, int | float) and isinstance(s, int | float) and d and s:
        ratio = s / d if row.better == "lower" else d / s
    vals["ratio"] = ratio
    return vals


def comparison(r: dict[str, Any], rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        v = row_values(row, r)
        out.append({"label": row.label, "better": row.better, "nd": row.nd, **v})
    return out


def print_comparison(r: dict[str, Any]) -> None:
    e = r["env"]
    mod = e.get("git_modified_files")
    print()
    what = (
        f"dendrite-lite at {e['dendrite_git_ref']} = {e['dendrite_git_commit'][:10]}"
        if e.get("dendrite_git_commit")
        else f"git {e.get('git_head')}" + (f" + {len(mod)} modified files" if mod else "")
    )
    print(f"{r['bench']}  {e['date']}  {what}")
    print(
        f"{e['nproc']} x {e['cpu_model']}; servers on CPU {e['server_cpu']}, client on CPU"
        f" {e['client_cpu']} ({e['client']}); fsync p50 {e['fsync']['p50_ms']} ms"
        + (f"; host probe {e['host_probe']}" if e.get("host_probe") else "")
    )
    for kind, res in r["servers"].items():
        idle = (res.get("idle_after") or {}).get("server_cpu_util")
        print(
            f"  {LABEL[kind]}: {res.get('info')}; start {res.get('start_s')} s;"
            f" idle CPU after the load {fmt(idle, 3)}; RSS at the end"
            f" {fmt((res.get('rss_kib_end') or 0) / 1024, 0)} MiB"
        )
    print()
    headers = ["figure", "dendrite-lite", "Synapse", "ours better by"]
    rows = []
    for c in r["comparison"]:
        nd = c.get("nd", 2)
        rows.append(
            [
                c["label"],
                fmt(c.get("dendrite"), nd),
                fmt(c.get("synapse"), nd),
                f"{c['ratio']:.1f}x" if c.get("ratio") else "-",
            ]
        )
    print_table(headers, rows)
    print()
    phase_rows = []
    for kind, res in r["servers"].items():
        for name, m in res.get("phases", {}).items():
            phase_rows.append(
                [
                    f"{kind}: {name}",
                    fmt(m.get("n")),
                    fmt(m.get("p50_ms")),
                    fmt(m.get("p95_ms")),
                    fmt(m.get("p99_ms")),
                    fmt(m.get("requests_per_s"), 1),
                    fmt(m.get("server_cpu_ms_per_req"), 3),
                    fmt(m.get("server_cpu_util")),
                    fmt(m.get("client_cpu_util")),
                    f"{fmt(m.get('foreign_load_server_cpu'))}/{fmt(m.get('foreign_load_client_cpu'))}",
                ]
            )
    if phase_rows:
        print_table(
            [
                "phase",
                "n",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "req/s",
                "srv CPU ms/req",
                "srv util",
                "cli util",
                "other srv/cli",
            ],
            phase_rows,
        )
        print()
    if r.get("goals"):
        print_table(
            ["goal", "value", "verdict"],
            [[g["goal"], g["value"], verdict(g["met"])] for g in r["goals"]],
        )
    for kind, res in r["servers"].items():
        for name, m in res.get("phases", {}).items():
            prof = m.get("profile")
            if prof:
                print(f"\npy-spy, {kind} {name} ({prof['samples']} samples, {prof['file']})")
                for key in ("self_by_package", "self", "project_inclusive"):
                    items = "; ".join(f"{k} {v:.1%}" for k, v in prof[key][:10])
                    print(f"  {key}: {items}")
    for kind, res in r["servers"].items():
        for w in res.get("warnings", []):
            print(f"warning ({kind}): {w}")
        for err in res.get("errors", []):
            print(f"ERROR ({kind}): {err}")


def idle_cpu(b: Bench, seconds: float = 3.0) -> dict[str, Any]:
    """The server's own CPU use while no request is in flight (timers, background jobs):
    it is part of every phase's CPU per request, so it is shown separately."""
    assert b.target.proc is not None
    p0 = b.target.proc.read()
    t0 = time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - t0
    p1 = b.target.proc.read()
    util = (p1["cpu_ms"] - p0["cpu_ms"]) / 1000.0 / wall
    log(f"{b.target.kind}: idle for {seconds:.0f} s after the load: CPU util {util:.3f}")
    return {"seconds": round(wall, 2), "server_cpu_util": round(util, 4)}


async def settle(
    b: Bench, threshold: float = 0.05, quiet_s: float = 2.0, limit_s: float = 300.0
) -> dict[str, Any]:
    """Wait until the server has finished the work a seeding left behind (Synapse, for
    example, updates room stats, the user directory and push summaries in the background):
    until its CPU use stays below `threshold` of a core for `quiet_s`, at most `limit_s`."""
    assert b.target.proc is not None
    t0 = time.perf_counter()
    quiet = 0.0
    last = b.target.proc.read()["cpu_ms"]
    step = 0.5
    while time.perf_counter() - t0 < limit_s:
        await asyncio.sleep(step)
        now = b.target.proc.read()["cpu_ms"]
        util = (now - last) / 1000.0 / step
        last = now
        quiet = quiet + step if util < threshold else 0.0
        if quiet >= quiet_s:
            break
    waited = time.perf_counter() - t0
    settled = quiet >= quiet_s
    log(f"{b.target.kind}: {'settled' if settled else 'still busy'} after {waited:.1f} s")
    if not settled:
        b.warn(f"the server was still busy {limit_s:.0f} s after seeding")
    return {"waited_s": round(waited, 1), "settled": settled}


def same_run_goal(
    r: dict[str, Any],
    what: str,
    phase: str,
    key: str,
    reference: float,
    goal: float,
    unit: str = "ms",
) -> dict[str, Any]:
    """A goal set against Synapse's reference figure, judged against Synapse in this run.

    The issues' goals are figures on this machine derived from Synapse's own there
    (../shared/bench/README.md: `reference`, the goal `goal`, so `reference / goal` times
    better). The machine is shared and its speed drifts by 2x across days (Synapse itself
    measures that), so its yardstick says to compare ratios from one run: the goal is met
    when Synapse in this run took at least `reference / goal` times as long as we did.
    """
    need = reference / goal
    d = (r["servers"].get("dendrite") or {}).get("phases", {}).get(phase, {})
    s = (r["servers"].get("synapse") or {}).get("phases", {}).get(phase, {})
    label = (
        f"{what}: Synapse / dendrite in this run >= {need:.1f}x ({reference:g} / {goal:g} {unit})"
    )
    ours, theirs = d.get(key), s.get(key)
    if not ours or not theirs:
        return {"goal": label, "value": "no Synapse run", "met": None}
    ratio = theirs / ours
    return {
        "goal": label,
        "value": f"{ratio:.1f}x ({ours:.2f} vs {theirs:.2f} {unit})",
        "met": ratio >= need,
    }


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def finish(args: argparse.Namespace, result: dict[str, Any]) -> int:
    print_comparison(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json}")
    errors = sum(len(s.get("errors", [])) for s in result["servers"].values())
    return 1 if errors else 0


def report(
    files: list[str], goals: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
) -> None:
    """Markdown tables of several runs of one bench (for bench/RESULTS.md). With `goals`,
    each run is judged again by today's goals (a run recorded before a goal was added
    gets it too; one whose data lacks a figure keeps the verdicts it was saved with)."""
    runs = [json.loads(Path(f).read_text()) for f in files]
    if goals is not None:
        for r in runs:
            with contextlib.suppress(KeyError, TypeError):
                r["goals"] = goals(r)
    for i, r in enumerate(runs):
        e = r["env"]
        mod = e.get("git_modified_files") or []
        other = []
        for kind, res in r["servers"].items():
            loads = [
                max(m.get("foreign_load_server_cpu") or 0, m.get("foreign_load_client_cpu") or 0)
                for m in res.get("phases", {}).values()
            ]
            other.append(f"{kind} max other load {max(loads) if loads else 0:.2f}")
        what = (
            f"dendrite-lite at git {e['dendrite_git_commit'][:7]} (exported, clean)"
            if e.get("dendrite_git_commit")
            else f"git {e.get('git_head')}"
            + (f" + {len(mod)} modified tracked files" if mod else "")
        )
        print(f"- run {i + 1}: {e['date']}, {what}; {'; '.join(other)}")
    print()
    headers = ["figure"]
    for i in range(len(runs)):
        headers += [f"ours (run {i + 1})", f"Synapse (run {i + 1})", f"ratio (run {i + 1})"]
    rows = []
    for k, c0 in enumerate(runs[0]["comparison"]):
        row = [c0["label"]]
        for r in runs:
            c = r["comparison"][k] if k < len(r["comparison"]) else {}
            nd = c.get("nd", 2)
            row += [
                fmt(c.get("dendrite"), nd),
                fmt(c.get("synapse"), nd),
                f"{c['ratio']:.1f}x" if c.get("ratio") else "-",
            ]
        rows.append(row)
    md_table(headers, rows)
    if runs[0].get("goals"):
        headers = ["goal"] + [f"run {i + 1}" for i in range(len(runs))] + ["verdict"]
        rows = []
        for k, g0 in enumerate(runs[0]["goals"]):
            gs = [r["goals"][k] for r in runs if k < len(r.get("goals", []))]
            mets = [g["met"] for g in gs if g["met"] is not None]
            v = (
                "met"
                if mets and all(mets)
                else ("NOT met" if not any(mets) else "met in some runs")
            )
            rows.append([g0["goal"], *[g["value"] for g in gs], v])
        md_table(headers, rows)
    rows = []
    for i, r in enumerate(runs):
        for kind, res in r["servers"].items():
            for name, m in res.get("phases", {}).items():
                rows.append(
                    [
                        f"{LABEL[kind]}: {name} (run {i + 1})",
                        fmt(m.get("n")),
                        fmt(m.get("p50_ms")),
                        fmt(m.get("p95_ms")),
                        fmt(m.get("p99_ms")),
                        fmt(m.get("requests_per_s"), 1),
                        fmt(m.get("server_cpu_ms_per_req"), 3),
                        fmt(m.get("server_cpu_util")),
                        f"{fmt(m.get('foreign_load_server_cpu'))} / "
                        f"{fmt(m.get('foreign_load_client_cpu'))}",
                    ]
                )
    md_table(
        [
            "phase",
            "n",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "req/s",
            "server CPU ms/req",
            "server util",
            "other load srv / cli",
        ],
        rows,
    )


def main_for(
    bench_name: str,
    doc: str,
    add_args: Callable[[argparse.ArgumentParser], None],
    workload: Workload,
    rows: Callable[[dict[str, Any]], list[Row]],
    goals: Callable[[dict[str, Any]], list[dict[str, Any]]],
    defaults: Callable[[argparse.Namespace], None],
) -> int:
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(p)
    add_args(p)
    args = p.parse_args()
    if args.report:
        report(args.report, goals)
        return 0
    defaults(args)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(f"signal {signum}")  # unwinds: the servers are stopped, dirs removed

    signal.signal(signal.SIGTERM, terminate)
    try:
        result = run_servers(args, workload, bench_name)
    except BenchError as e:
        print(f"\n*** {bench_name} FAILED: {e}", file=sys.stderr)
        return 1
    result["comparison"] = comparison(result, rows(result))
    result["goals"] = goals(result)
    return finish(args, result)


def phase(res: dict[str, Any], name: str, key: str) -> Any:
    return res["phases"][name][key]
