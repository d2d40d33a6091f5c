"""The console script's short path for `run` (config and lock checked, then exec)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dendrite_lite.cli import entry

from dendrite_lite.config import render_default
from dendrite_lite.data_dir import lock


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "./data"),
        (["--data-dir", "/x"], "/x"),
        (["--data-dir=/y"], "/y"),
        (["--help"], None),
        (["--data-dir"], None),
        (["--bogus"], None),
    ],
)
def test_run_arguments(
    args: list[str], expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DENDRITE_LITE_DATA_DIR", raising=False)
    assert entry._run_data_dir(args) == expected


def test_run_data_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENDRITE_LITE_DATA_DIR", "/env")
    assert entry._run_data_dir([]) == "/env"


def test_run_with_a_bad_config_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.toml").write_text("listen = 5\n")
    monkeypatch.setattr(sys, "argv", ["dendrite-lite", "run", "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        entry.main()
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: config: ")


def test_run_beside_a_running_server_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.toml").write_text(render_default("localhost", "127.0.0.1:1", False))
    monkeypatch.setattr(sys, "argv", ["dendrite-lite", "run", "--data-dir", str(tmp_path)])
    held = lock(tmp_path)
    try:
        with pytest.raises(SystemExit) as info:
            entry.main()
    finally:
        held.close()
    assert info.value.code == 1
    assert "another dendrite-lite is running" in capsys.readouterr().err


def test_other_commands_go_to_typer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["dendrite-lite", "version"])
    with pytest.raises(SystemExit) as info:
        entry.main()
    assert info.value.code in (0, None)
    assert capsys.readouterr().out.strip()


def test_run_execs_the_server_with_two_malloc_arenas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.toml").write_text(render_default("localhost", "127.0.0.1:1", False))
    monkeypatch.setattr(sys, "argv", ["dendrite-lite", "run", "--data-dir", str(tmp_path)])
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    execs: list[list[str]] = []

    def fake_execv(path: str, argv: list[str]) -> None:
        execs.append(argv)

    monkeypatch.setattr(entry.os, "execv", fake_execv)
    entry.main()
    assert execs == [[sys.executable, "-m", "dendrite_lite.server", "--data-dir", str(tmp_path)]]
    assert entry.os.environ["MALLOC_ARENA_MAX"] == "2"
    assert entry.os.environ["MALLOC_MMAP_THRESHOLD_"] == "131072"
    assert entry.os.environ["MALLOC_TRIM_THRESHOLD_"] == "131072"
