"""`dendrite-lite email test` and `user add --email`, in-process on temp data dirs, with
a real SMTP server (aiosmtpd) receiving the test mail."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest
from click.testing import Result
from dendrite_lite.cli.main import app
from typer.testing import CliRunner

from tests.e2e.harness import free_port, set_config
from tests.unit.threepid.smtp_sink import SMTPSink

PASSWORD = "a good long password"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def ok(*args: str | Path) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(code: int, *args: str | Path) -> str:
    result = invoke(*args)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result.stderr.replace("\n", "")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    ok("init", "--data-dir", path, "--server-name", "example.org")
    return path


def use_smtp(data_dir: Path, port: int, **extra: object) -> None:
    settings: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_tls": "none",
        "from": "matrix@example.org",
        **extra,
    }
    set_config(data_dir, {"email": settings})


def test_email_test_sends_a_mail(data_dir: Path) -> None:
    sink = SMTPSink().start()
    try:
        use_smtp(data_dir, sink.port)
        result = ok("email", "test", "Me@Example.org", "--data-dir", data_dir)
        assert "Sent a test mail to me@example.org" in result.stdout
        mail = sink.wait_for("me@example.org")
        assert mail.subject == "Test mail from example.org"
        assert "[email] settings work" in mail.words
    finally:
        sink.stop()


def test_email_test_reports_smtp_failure_with_exit_1(data_dir: Path) -> None:
    use_smtp(data_dir, free_port(), timeout_seconds=2.0)
    message = fails(1, "email", "test", "me@example.org", "--data-dir", data_dir)
    assert "sending through 127.0.0.1" in message


def test_email_test_needs_email_configured_and_a_valid_address(data_dir: Path) -> None:
    assert "email is off" in fails(2, "email", "test", "me@example.org", "--data-dir", data_dir)
    use_smtp(data_dir, free_port())
    assert "Invalid email address" in fails(1, "email", "test", "nope", "--data-dir", data_dir)


def test_a_broken_template_override_is_a_config_error(data_dir: Path) -> None:
    use_smtp(data_dir, free_port())
    override = data_dir / "templates" / "email"
    override.mkdir(parents=True)
    (override / "test.txt").write_text("no subject line\n")
    message = fails(2, "email", "test", "me@example.org", "--data-dir", data_dir)
    assert "Subject" in message


def test_bad_email_config_names_the_key(data_dir: Path) -> None:
    set_config(data_dir, {"email": {"smtp_host": "smtp.example.org"}})
    assert "email.from" in fails(2, "email", "test", "a@example.org", "--data-dir", data_dir)
    set_config(data_dir, {"email": {"smtp_host": "", "registration": "required"}})
    assert "email.registration" in fails(2, "status", "--data-dir", data_dir)


def test_user_add_with_email_binds_the_address(data_dir: Path) -> None:
    ok(
        "user", "add", "alice", "--password", PASSWORD, "--email", " Alice@Example.org ",
        "--data-dir", data_dir,
    )  # fmt: skip
    conn = apsw.Connection(str(data_dir / "homeserver.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        rows = conn.execute("SELECT medium, address, user_id FROM user_threepids").fetchall()
    finally:
        conn.close()
    assert rows == [("email", "alice@example.org", "@alice:example.org")]
    taken = fails(
        1, "user", "add", "bob", "--password", PASSWORD, "--email", "alice@example.org",
        "--data-dir", data_dir,
    )  # fmt: skip
    assert "already in use" in taken
    bad = fails(
        1, "user", "add", "carol", "--password", PASSWORD, "--email", "carol",
        "--data-dir", data_dir,
    )  # fmt: skip
    assert "Invalid email address" in bad
