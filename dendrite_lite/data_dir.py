"""The data directory: config.toml, homeserver.db, and the lock that says a server runs."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "dendrite-lite.lock"


class DataDirLocked(Exception):
    pass


def lock(data_dir: str | Path) -> IO[str]:
    """Hold an exclusive lock on the data dir for as long as the returned file is open."""
    path = Path(data_dir) / LOCK_FILE
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirLocked(f"another dendrite-lite is running on {data_dir}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
