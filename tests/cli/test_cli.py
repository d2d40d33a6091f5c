"""The `dendrite-lite` command line, in-process with typer's CliRunner on temp data dirs.

Backup and restore run beside a real server subprocess that keeps being written to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import apsw
import httpx
import pytest
from argon2 import PasswordHasher
from click.testing import Result
from dendrite_lite.cli.main import app
from typer.testing import CliRunner

from tests.e2e.harness import Server, free_port, set_config
from tests.e2e.matrix import CS, expect, register_user, unique, username_available

PASSWORD = "a good long password"


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], env=env)


def ok(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(code: int, *args: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail with `code`; returns its error message.

    rich wraps the message at 80 columns when stderr is not a terminal (see
    test_long_errors_stay_on_one_line); undo that to read the message.
    """
    result = invoke(*args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    message = result.stderr.strip().replace("\n", "")
    assert message.startswith("error:"), message
    return message


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    ok("init", "--data-dir", path, "--server-name", "example.org", "--listen", "127.0.0.1:8448")
    return path


def users(data_dir: Path, *extra: str) -> dict[str, dict[str, object]]:
    listed = json.loads(ok("user", "list", "--json", "--data-dir", data_dir, *extra).stdout)
    return {entry["user_id"]: entry for entry in listed}


def password_hash(data_dir: Path, user_id: str) -> str | None:
    conn = apsw.Connection(str(data_dir / "homeserver.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        row = conn.execute(
            "SELECT password_hash FROM users WHERE user_id = ?", (user_id,)
        ).fetchone()
    finally:
        conn.close()
    assert row is not None
    return None if row[0] is None else str(row[0])


def integrity(path: Path) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return list(conn.execute("PRAGMA integrity_check").fetchall())
    finally:
        conn.close()


# -- init and config -------------------------------------------------------------------


def test_init_creates_a_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "new" / "data"
    result = ok("init", "--data-dir", path, "--server-name", "example.org", "--open-registration")
    assert "Initialised" in result.stdout
    assert (path / "config.toml").is_file()
    assert (path / "homeserver.db").is_file()
    config = (path / "config.toml").read_text()
    assert 'server_name = "example.org"' in config
    assert "enabled = true" in config
    conn = apsw.Connection(str(path / "homeserver.db"))
    try:
        keys = conn.execute("SELECT key_id FROM server_signing_keys").fetchall()
    finally:
        conn.close()
    assert len(keys) == 1 and str(keys[0][0]).startswith("ed25519:")


def test_init_refuses_to_overwrite(data_dir: Path) -> None:
    before = (data_dir / "config.toml").read_text()
    message = fails(1, "init", "--data-dir", data_dir, "--server-name", "other.org")
    assert "already exists" in message
    assert (data_dir / "config.toml").read_text() == before


def test_init_refuses_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.mkdir()
    (path / "homeserver.db").write_bytes(b"")
    assert "already exists" in fails(1, "init", "--data-dir", path)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--listen", "nonsense"], "listen"),
        (["--listen", "127.0.0.1:70000"], "listen"),
        (["--server-name", "bad name!"], "server_name"),
    ],
)
def test_init_refuses_bad_options(tmp_path: Path, args: list[str], key: str) -> None:
    assert key in fails(2, "init", "--data-dir", tmp_path / "data", *args)
    assert not (tmp_path / "data" / "config.toml").exists()


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda text: text.replace('listen = "127.0.0.1:8448"', "listen = 5"), "listen"),
        (lambda text: "bogus_key = 1\n" + text, "unknown key `bogus_key`"),
        (
            lambda text: text.replace("[database]\n", "[database]\nbogus_key = 1\n"),
            "database: Object contains unknown field `bogus_key`",
        ),
        (lambda text: text.replace("reader_threads = 3", 'reader_threads = "3"'), "reader_threads"),
        (lambda text: text.replace('synchronous = "FULL"', 'synchronous = "OFF"'), "synchronous"),
        (lambda text: text.replace("[auth]", "[auth]\nargon2_time_cost = 0\n[x]"), "x"),
        (lambda text: text + "\n[auth\n", "TOML"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["run"], ["user", "list"]])
def test_invalid_config_exits_2_naming_the_key(
    data_dir: Path, edit: object, key: str, command: list[str]
) -> None:
    path = data_dir / "config.toml"
    path.write_text(edit(path.read_text()))  # type: ignore[operator]
    message = fails(2, *command, "--data-dir", data_dir)
    assert message.startswith("error: config: "), message
    assert key in message, message


def test_long_errors_stay_on_one_line(data_dir: Path) -> None:
    path = data_dir / "config.toml"
    path.write_text(path.read_text() + "\n[auth\n")
    result = invoke("status", "--data-dir", data_dir)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_config(tmp_path: Path) -> None:
    assert "init" in fails(2, "status", "--data-dir", tmp_path / "nowhere")


def test_data_dir_from_the_environment(data_dir: Path) -> None:
    result = ok("status", env={"DENDRITE_LITE_DATA_DIR": str(data_dir)})
    assert "example.org" in result.stdout
    ok(
        "user",
        "add",
        "envuser",
        "--password",
        PASSWORD,
        env={"DENDRITE_LITE_DATA_DIR": str(data_dir)},
    )
    assert "@envuser:example.org" in users(data_dir)


def test_status(data_dir: Path) -> None:
    ok("user", "add", "alice", "--password", PASSWORD, "--data-dir", data_dir)
    out = ok("status", "--data-dir", data_dir).stdout
    assert "example.org" in out
    assert "127.0.0.1:8448" in out
    assert "closed" in out  # registration
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip()}
    assert lines["users"] == "1"


def test_version() -> None:
    from dendrite_lite import __version__

    assert ok("version").stdout.strip() == __version__


# -- users -----------------------------------------------------------------------------


def test_user_lifecycle(data_dir: Path) -> None:
    out = ok("user", "add", "Alice", "--password", PASSWORD, "--data-dir", data_dir).stdout
    assert "@alice:example.org" in out
    ok("user", "add", "bob", "--password", PASSWORD, "--admin", "--data-dir", data_dir)
    listed = users(data_dir)
    assert set(listed) == {"@alice:example.org", "@bob:example.org"}
    assert listed["@alice:example.org"]["admin"] is False
    assert listed["@bob:example.org"]["admin"] is True
    assert listed["@alice:example.org"]["deactivated"] is False
    assert PasswordHasher().verify(password_hash(data_dir, "@alice:example.org"), PASSWORD)

    assert "already exists" in fails(
        1, "user", "add", "alice", "--password", PASSWORD, "--data-dir", data_dir
    )
    assert "at least" in fails(
        1, "user", "add", "carol", "--password", "short", "--data-dir", data_dir
    )
    assert "can only contain" in fails(
        1, "user", "add", "bad name", "--password", PASSWORD, "--data-dir", data_dir
    )

    new_password = "another long password"
    ok("user", "set-password", "alice", "--password", new_password, "--data-dir", data_dir)
    assert PasswordHasher().verify(password_hash(data_dir, "@alice:example.org"), new_password)
    ok("user", "set-password", "@alice:example.org", "--password", PASSWORD, "--data-dir", data_dir)
    assert PasswordHasher().verify(password_hash(data_dir, "@alice:example.org"), PASSWORD)
    fails(1, "user", "set-password", "nobody", "--password", PASSWORD, "--data-dir", data_dir)
    fails(
        1,
        "user",
        "set-password",
        "@alice:elsewhere.org",
        "--password",
        PASSWORD,
        "--data-dir",
        data_dir,
    )

    ok("user", "set-admin", "alice", "--data-dir", data_dir)
    assert users(data_dir)["@alice:example.org"]["admin"] is True
    ok("user", "set-admin", "alice", "false", "--data-dir", data_dir)
    assert users(data_dir)["@alice:example.org"]["admin"] is False
    fails(1, "user", "set-admin", "nobody", "--data-dir", data_dir)

    ok("user", "deactivate", "alice", "--erase", "--data-dir", data_dir)
    listed = users(data_dir)
    assert listed["@alice:example.org"]["deactivated"] is True
    assert password_hash(data_dir, "@alice:example.org") is None
    assert set(users(data_dir, "--no-deactivated")) == {"@bob:example.org"}
    fails(1, "user", "set-password", "alice", "--password", PASSWORD, "--data-dir", data_dir)
    fails(1, "user", "deactivate", "nobody", "--data-dir", data_dir)

    table = ok("user", "list", "--data-dir", data_dir).stdout
    assert "@bob:example.org" in table


def test_user_add_prompts_for_the_password(data_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["user", "add", "dave", "--data-dir", str(data_dir)], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert PasswordHasher().verify(password_hash(data_dir, "@dave:example.org"), PASSWORD)
    result = ok(
        "user", "add", "erin", "--data-dir", data_dir, env={"DENDRITE_LITE_PASSWORD": PASSWORD}
    )
    assert PasswordHasher().verify(password_hash(data_dir, "@erin:example.org"), PASSWORD)


# -- registration tokens ---------------------------------------------------------------


def test_registration_tokens(data_dir: Path) -> None:
    assert (
        ok(
            "registration-token",
            "create",
            "--token",
            "family-2026",
            "--uses",
            "2",
            "--data-dir",
            data_dir,
        ).stdout.strip()
        == "family-2026"
    )
    generated = ok(
        "registration-token", "create", "--expires-in-days", "7", "--data-dir", data_dir
    ).stdout.strip()
    assert len(generated) == 16 and generated.isalnum()

    listed = json.loads(ok("registration-token", "list", "--json", "--data-dir", data_dir).stdout)
    by_token = {entry["token"]: entry for entry in listed}
    assert by_token["family-2026"] == {
        "token": "family-2026",
        "uses_allowed": 2,
        "completed": 0,
        "expiry_time": None,
        "valid": True,
    }
    assert by_token[generated]["uses_allowed"] is None
    assert by_token[generated]["expiry_time"] > 0
    assert "family-2026" in ok("registration-token", "list", "--data-dir", data_dir).stdout

    assert "already exists" in fails(
        1, "registration-token", "create", "--token", "family-2026", "--data-dir", data_dir
    )
    fails(2, "registration-token", "create", "--token", "no spaces", "--data-dir", data_dir)
    fails(2, "registration-token", "create", "--token", "x" * 65, "--data-dir", data_dir)
    fails(2, "registration-token", "create", "--uses", "0", "--data-dir", data_dir)

    ok("registration-token", "revoke", "family-2026", "--data-dir", data_dir)
    # A token of the operator's own that begins with "-" is revoked after "--".
    ok("registration-token", "create", "--token=-dash", "--data-dir", data_dir)
    ok("registration-token", "revoke", "--data-dir", data_dir, "--", "-dash")
    fails(1, "registration-token", "revoke", "family-2026", "--data-dir", data_dir)
    listed = json.loads(ok("registration-token", "list", "--json", "--data-dir", data_dir).stdout)
    assert [entry["token"] for entry in listed] == [generated]


def test_expired_token_is_listed_as_invalid(data_dir: Path) -> None:
    ok(
        "registration-token",
        "create",
        "--token",
        "gone",
        "--expires-in-days",
        "0",
        "--data-dir",
        data_dir,
    )
    listed = json.loads(ok("registration-token", "list", "--json", "--data-dir", data_dir).stdout)
    assert listed[0]["valid"] is False


# -- beside a running server -----------------------------------------------------------


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    path = tmp_path / "served"
    ok(
        "init",
        "--data-dir",
        path,
        "--server-name",
        "localhost",
        "--listen",
        f"127.0.0.1:{port}",
        "--open-registration",
    )
    set_config(path, {"rate_limits": {"enabled": False}})
    server = Server(path, port, via_cli=True).start()  # the console script's whole path
    yield server
    server.stop()


def test_run_refuses_a_second_server_on_the_same_dir(running: Server) -> None:
    assert "another dendrite-lite is running" in fails(1, "run", "--data-dir", running.data_dir)


def test_backup_while_serving_and_restore_after_stopping(running: Server, tmp_path: Path) -> None:
    with running.client() as http:
        before = register_user(http, "before")
        data_path = f"{CS}/user/{quote(before.user_id, safe='')}/account_data/org.example.kept"
        expect(http.put(data_path, headers=before.headers, json={"kept": True}), 200)

    # Keep the server busy writing while the backup copies.
    stop = threading.Event()
    written: list[str] = []

    def keep_writing() -> None:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            while not stop.is_set():
                localpart = unique("busy")
                body = {
                    "username": localpart,
                    "inhibit_login": True,
                    "auth": {"type": "m.login.dummy"},
                }
                if client.post(f"{CS}/register", json=body).status_code == 200:
                    written.append(localpart)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        while len(written) < 5:
            threading.Event().wait(0.01)
        backup = tmp_path / "backups" / "homeserver-backup.db"
        backup.parent.mkdir()
        result = ok("backup", backup, "--data-dir", running.data_dir)
        assert "Backed up" in result.stdout
        acknowledged_before_backup = len(written)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert len(written) > acknowledged_before_backup  # it really ran during the backup

    assert integrity(backup) == [("ok",)]
    conn = apsw.Connection(str(backup), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        in_backup = {str(row[0]) for row in conn.execute("SELECT user_id FROM users")}
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        conn.close()
    assert before.user_id in in_backup
    assert {f"@{name}:localhost" for name in written[:5]} <= in_backup
    assert not (backup.parent / (backup.name + ".partial")).exists()

    # A second backup to the same file needs --force.
    assert "--force" in fails(1, "backup", backup, "--data-dir", running.data_dir)

    # After the backup: a user the backup does not have.
    with running.client() as http:
        after = register_user(http, "after")

    message = fails(1, "restore", backup, "--force", "--data-dir", running.data_dir)
    assert "stop it before restoring" in message

    running.stop()
    assert "--force" in fails(1, "restore", backup, "--data-dir", running.data_dir)
    assert "Restored" in ok("restore", backup, "--force", "--data-dir", running.data_dir).stdout
    assert integrity(running.data_dir / "homeserver.db") == [("ok",)]

    running.start()
    with running.client() as http:
        expect(username_available(http, before.localpart), 400, "M_USER_IN_USE")
        expect(username_available(http, after.localpart), 200)
        # Tokens, account data and all came back with the backup.
        assert expect(http.get(data_path, headers=before.headers), 200) == {"kept": True}


def test_restore_refuses_what_is_not_a_backup(data_dir: Path, tmp_path: Path) -> None:
    assert "not a file" in fails(
        1, "restore", tmp_path / "missing.db", "--force", "--data-dir", data_dir
    )
    empty = tmp_path / "empty.db"
    apsw.Connection(str(empty)).close()
    message = fails(1, "restore", empty, "--force", "--data-dir", data_dir)
    assert "not a dendrite-lite database" in message
    assert integrity(data_dir / "homeserver.db") == [("ok",)]
    assert users(data_dir) == {}


def test_restore_refuses_a_file_that_is_not_sqlite(data_dir: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    fails(1, "restore", junk, "--force", "--data-dir", data_dir)
