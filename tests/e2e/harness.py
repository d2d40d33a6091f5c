"""The real server as a subprocess: a temp data dir, a free port, SIGTERM to stop.

Launched as ``python -m dendrite_lite.server --data-dir DIR``, the process that
``dendrite-lite run`` execs into (``via_cli=True`` starts it through the console script
instead), so that coverage's subprocess patch measures the server too; stopped with
SIGTERM so that coverage writes its data (``sigterm = true``).

Data dirs are made by the real ``dendrite-lite init``, in this process through typer's
CliRunner: a server costs one interpreter start instead of three (the CLI's, the exec'd
server's and init's, each seconds under coverage), which is most of the suite's time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import apsw
import httpx
from dendrite_lite.cli.main import app as cli_app
from typer.testing import CliRunner

from dendrite_lite.config import load

LAUNCH = "from dendrite_lite.cli.entry import main; main()"  # the console script
SERVER_MODULE = "dendrite_lite.server"  # what `dendrite-lite run` execs
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0

# Config overrides: {"section": {"key": value}}; "" is the top level.
Overrides = Mapping[str, Mapping[str, Any]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database_snapshot(data_dir: Path) -> Iterator[apsw.Connection]:
    """A read-only connection to a running server's database, inside one read
    transaction: the server goes on writing (earlier tests' background work moves the
    stream), and a test that computes an answer in-process must read one state."""
    conn = apsw.Connection(str(load(data_dir).database_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # the snapshot starts here
        yield conn
    finally:
        conn.close()


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", LAUNCH, *args]


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `dendrite-lite ARGS` as its own process (as an operator would beside a server)."""
    result = subprocess.run(
        cli_command(*args), capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"dendrite-lite {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def set_config(data_dir: Path, overrides: Overrides) -> None:
    """Rewrite keys of the commented config.toml that `init` wrote, section by section."""
    path = data_dir / "config.toml"
    lines = path.read_text().splitlines()
    pending = {
        (section, key): value for section, keys in overrides.items() for key, value in keys.items()
    }
    section = ""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            continue
        if "=" not in stripped or stripped.startswith("#"):
            continue
        key = stripped.split("=", 1)[0].strip()
        if (section, key) in pending:
            lines[index] = f"{key} = {_toml(pending.pop((section, key)))}"
    if pending:
        raise KeyError(f"not in config.toml: {sorted(pending)}")
    path.write_text("\n".join(lines) + "\n")


def init_data_dir(data_dir: Path, port: int, *, open_registration: bool = True) -> None:
    """`dendrite-lite init`, in this process (its own thread: init runs an event loop,
    and the calling test may be inside one)."""
    args = ["init", "--data-dir", str(data_dir), "--server-name", "localhost"]
    args += ["--listen", f"127.0.0.1:{port}"]
    if open_registration:
        args.append("--open-registration")
    with ThreadPoolExecutor(1) as thread:
        result = thread.submit(CliRunner().invoke, cli_app, args).result()
    if result.exit_code != 0:
        raise AssertionError(
            f"dendrite-lite init exited {result.exit_code}:\n{result.output}\n{result.exception!r}"
        )


class Server:
    """One dendrite-lite process on one data dir (restartable on the same dir and port)."""

    def __init__(self, data_dir: Path, port: int, *, via_cli: bool = False) -> None:
        self.data_dir = data_dir
        self.port = port
        self.via_cli = via_cli
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._signalled = False
        self.log_path = data_dir / "server.log"

    @classmethod
    def create(
        cls, data_dir: Path, overrides: Overrides | None = None, *, open_registration: bool = True
    ) -> Server:
        port = free_port()
        init_data_dir(data_dir, port, open_registration=open_registration)
        if overrides:
            set_config(data_dir, overrides)
        return cls(data_dir, port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Server:
        assert not self.running, "already running"
        self._signalled = False
        log = self.log_path.open("ab")
        try:
            args = ["--data-dir", str(self.data_dir)]
            self.proc = subprocess.Popen(
                cli_command("run", *args)
                if self.via_cli
                else [sys.executable, "-m", SERVER_MODULE, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self._wait_until_serving()
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode} at start:\n{self.log_tail()}"
                )
            try:
                response = httpx.get(f"{self.url}/_matrix/client/versions", timeout=2.0)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code == 200:
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not answer in {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def signal_stop(self) -> None:
        """SIGTERM without waiting: servers stopped together shut down side by side.

        Sent once: uvicorn takes a second SIGTERM as "exit now, skip the shutdown".
        """
        if self.proc is not None and self.proc.poll() is None and not self._signalled:
            self.proc.send_signal(signal.SIGTERM)
            self._signalled = True

    def stop(self) -> None:
        """SIGTERM (coverage writes its data), then wait for a graceful exit.

        uvicorn re-raises the SIGTERM it caught once shut down, so the process ends
        "killed by SIGTERM" even when it shut down cleanly; the log tells which.
        """
        if self.proc is None:
            return
        self.signal_stop()
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"server ignored SIGTERM:\n{self.log_tail()}") from None
        if proc.returncode not in (0, -signal.SIGTERM) or not self.log_tail(5).rstrip().endswith(
            f"Finished server process [{proc.pid}]"
        ):
            raise RuntimeError(
                f"server did not stop cleanly ({proc.returncode}):\n{self.log_tail()}"
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing; what a crash or power cut leaves behind."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`dendrite-lite ARGS --data-dir DIR` beside the running server."""
        return run_cli(*args, "--data-dir", str(self.data_dir), check=check)
