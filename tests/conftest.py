"""Set-up shared by every test directory."""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import dendrite_lite.cli
import pytest

import dendrite_lite

# pytest-xdist hands its workers the terminal's width as COLUMNS; rich's consoles (the
# CLI's, created at import) would fix their width from it, and tests that give one command
# a COLUMNS of its own would be ignored. Serial runs have none; neither do workers.
os.environ.pop("COLUMNS", None)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the package's bytecode once, before any server subprocess starts.

    The suite starts the server as a subprocess dozens of times. Where
    PYTHONDONTWRITEBYTECODE is set (as on our CI machines), every one of those processes
    would compile the package's ~200 modules from source again (0.4 s a start, more
    under coverage); compiled once here, they load the bytecode. ``__pycache__`` is
    ignored by git.
    """
    for package in (dendrite_lite, dendrite_lite.cli):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)
