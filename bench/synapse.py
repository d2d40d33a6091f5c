#!/usr/bin/env python3
"""synapse.py: a reference Synapse (SQLite) for side-by-side benchmarks.

    python bench/synapse.py install                      # create/verify the cache venv
    python bench/synapse.py start DATADIR PORT [--presence off] [--cpu 0]

`start` generates DATADIR/homeserver.yaml on first use (SQLite in DATADIR/homeserver.db,
open registration without verification, every rate limit lifted, presence on or off,
listening on 127.0.0.1:PORT only, no trusted key servers so nothing leaves the machine)
and then execs Synapse pinned to --cpu (default 0; -1: not pinned), in the foreground.

Synapse lives in its own venv outside the repository, by default
~/.cache/dendrite-lite-bench/synapse-venv-HASH ($DENDRITE_BENCH_CACHE overrides the
parent), one per base interpreter (HASH: of its path), so that Synapse runs on the same
CPython build as the venv that runs the bench and dendrite-lite: a distribution's python3
(PGO, LTO) and pyenv's default build differ by 10-25 % in either server's CPU here, and a
side-by-side run is to compare the servers, not the interpreters.  It is created on first
use with `pip install matrix-synapse==1.163.2` ($SYNAPSE_VERSION
overrides the version).  The project never imports Synapse; only the bench scripts use
this module (`SynapseServer`) to run it as a separate process.

The settings mirror the shared yardstick's start-synapse.sh (which this does not use):
the same rate-limit overrides, registration without verification and no outbound
traffic.  Two deliberate differences: the server name is "localhost" (as for
dendrite-lite in the benches, so that user IDs and event sizes are the same), and
presence is a parameter (Synapse's default: on).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

SYNAPSE_VERSION = os.environ.get("SYNAPSE_VERSION", "1.163.2")
CACHE = Path(os.environ.get("DENDRITE_BENCH_CACHE", Path.home() / ".cache" / "dendrite-lite-bench"))


def base_interpreter() -> str:
    """The interpreter this venv was made from, symlinks resolved (of a venv made from a
    venv: the real executable under both)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


VENV = CACHE / f"synapse-venv-{hashlib.sha256(base_interpreter().encode()).hexdigest()[:8]}"
PY = VENV / "bin" / "python"

# Everything Synapse rate-limits, lifted (the same list as start-synapse.sh).
_BIG = {"per_second": 100000, "burst_count": 100000}
OVERRIDES = {
    "enable_registration": True,
    "enable_registration_without_verification": True,
    "registration_shared_secret": "bench-secret",
    "rc_message": _BIG,
    "rc_registration": _BIG,
    "rc_login": {"address": _BIG, "account": _BIG, "failed_attempts": _BIG},
    "rc_joins": {"local": _BIG, "remote": _BIG},
    "rc_invites": {"per_room": _BIG, "per_user": _BIG, "per_issuer": _BIG},
    "rc_room_creation": _BIG,
    "rc_3pid_validation": _BIG,
    "rc_presence": {"per_user": _BIG},
    "rc_delayed_event_mgmt": _BIG,
    "rc_reports": _BIG,
    "rc_media_create": _BIG,
    "rc_joins_per_room": _BIG,
    "rc_key_requests": _BIG,
    "federation_ip_range_blacklist": [],
    "ip_range_blacklist": [],
    "suppress_key_server_warning": True,
    "trusted_key_servers": [],
    "report_stats": False,
}


def log(msg: str) -> None:
    print(f"[synapse.py] {msg}", file=sys.stderr, flush=True)


def installed_version() -> str | None:
    if not PY.exists():
        return None
    r = subprocess.run(
        [str(PY), "-c", "import synapse; print(synapse.__version__)"],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_venv() -> Path:
    """The venv's python, with matrix-synapse==SYNAPSE_VERSION installed (idempotent)."""
    have = installed_version()
    if have == SYNAPSE_VERSION:
        return PY
    CACHE.mkdir(parents=True, exist_ok=True)
    if not PY.exists():
        log(f"creating {VENV}")
        subprocess.run([base_interpreter(), "-m", "venv", str(VENV)], check=True)
    log(f"installing matrix-synapse=={SYNAPSE_VERSION} (have: {have}); takes a minute or two")
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", f"matrix-synapse=={SYNAPSE_VERSION}"],
        check=True,
    )
    have = installed_version()
    if have != SYNAPSE_VERSION:
        raise RuntimeError(f"matrix-synapse {SYNAPSE_VERSION} did not install (got {have})")
    return PY


def generate_config(
    data_dir: Path, port: int, *, presence: bool = True, server_name: str = "localhost"
) -> Path:
    """DATADIR/homeserver.yaml (generated once; later calls keep it)."""
    py = ensure_venv()
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = data_dir / "homeserver.yaml"
    if cfg.exists():
        return cfg
    subprocess.run(
        [
            str(py),
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            server_name,
            "--config-path",
            str(cfg),
            "--generate-config",
            "--report-stats=no",
            "--data-directory",
            str(data_dir),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=data_dir,
    )
    # Edit with Synapse's own PyYAML (this venv need not have it).
    script = r"""
import json, sys, yaml
path, port, presence = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
overrides = json.loads(sys.argv[4])
c = yaml.safe_load(open(path))
c["listeners"][0]["port"] = port
c["listeners"][0]["bind_addresses"] = ["127.0.0.1"]
c.update(overrides)
c["presence"] = {"enabled": presence}
yaml.safe_dump(c, open(path, "w"))
"""
    import json

    subprocess.run(
        [
            str(py),
            "-c",
            script,
            str(cfg),
            str(port),
            "1" if presence else "0",
            json.dumps(OVERRIDES),
        ],
        check=True,
    )
    return cfg


def command(data_dir: Path) -> list[str]:
    return [
        str(PY),
        "-m",
        "synapse.app.homeserver",
        "--config-path",
        str(data_dir / "homeserver.yaml"),
    ]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="create the cache venv with matrix-synapse")
    s = sub.add_parser("start", help="generate a config on first use and run Synapse")
    s.add_argument("data_dir", type=Path)
    s.add_argument("port", type=int)
    s.add_argument("--presence", choices=["on", "off"], default="on")
    s.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: no pinning)")
    args = p.parse_args()
    if args.cmd == "install":
        ensure_venv()
        print(f"{PY} (matrix-synapse {installed_version()})")
        return 0
    data_dir = args.data_dir.resolve()
    generate_config(data_dir, args.port, presence=args.presence == "on")
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    os.chdir(data_dir)
    cmd = command(data_dir)
    os.execv(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
