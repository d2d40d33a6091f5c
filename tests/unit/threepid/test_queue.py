"""The send queue on a real database and a real SMTP server: send, back off, give up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from dendrite_lite.clock import now_ms
from dendrite_lite.config import EmailConfig
from dendrite_lite.storage import email_queue, threepid
from dendrite_lite.storage.db import Database, DatabaseSettings
from dendrite_lite.storage.threepid import ValidationSessionRow
from dendrite_lite.threepid.mailer import Mailer
from dendrite_lite.threepid.queue import EmailQueue, _redact
from tests.e2e.harness import free_port
from tests.unit.threepid.smtp_sink import SMTPSink


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "homeserver.db", DatabaseSettings(reader_threads=1))
    database.open()
    yield database
    database.close()


def config(port: int, **extra: object) -> EmailConfig:
    base = EmailConfig(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        from_address="hs@example.org",
        timeout_seconds=2.0,
    )
    return msgspec.structs.replace(base, **extra)


async def queue_mail(db: Database, recipient: str, sid: str | None = None) -> None:
    def unit(conn: object) -> None:
        now = now_ms()
        if sid is not None:
            threepid.insert_session(
                conn,  # type: ignore[arg-type]
                ValidationSessionRow(
                    sid, "add", "email", recipient, "s", 1, None, None, now, now, None, None
                ),
            )
        email_queue.enqueue(conn, recipient, "Hello", "text", "<p>html</p>", sid, now)  # type: ignore[arg-type]

    await db.write(unit)


async def pending(db: Database) -> int:
    return int(
        await db.read(lambda conn: conn.execute("SELECT count(*) FROM email_queue").fetchone()[0])
    )  # type: ignore[index]


async def test_due_mail_is_sent_and_removed(db: Database) -> None:
    sink = SMTPSink().start()
    try:
        queue = EmailQueue(db, Mailer(config(sink.port)), config(sink.port))
        await queue_mail(db, "a@example.org")
        wait = await queue.send_due()
        assert wait > 0 and queue.sent == 1
        mail = await asyncio.to_thread(sink.wait_for, "a@example.org")
        assert mail.subject == "Hello" and mail.html.strip() == "<p>html</p>"
        assert await pending(db) == 0
    finally:
        sink.stop()


async def test_failures_back_off_then_give_up_and_mark_the_session(db: Database) -> None:
    settings = config(free_port(), retry_first_delay_ms=50, retry_max_delay_ms=80)
    settings = msgspec.structs.replace(settings, give_up_after_ms=250)
    queue = EmailQueue(db, Mailer(settings), settings)
    await queue_mail(db, "b@example.org", sid="sid1")
    first_wait = await queue.send_due()
    assert 0 <= first_wait <= 0.05 and await pending(db) == 1
    attempts = await db.read(lambda conn: email_queue.due(conn, now_ms() + 10_000, 10))
    assert attempts[0].attempts == 1
    deadline = asyncio.get_running_loop().time() + 5
    while await pending(db):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
        await queue.send_due()
    assert queue.given_up == 1 and queue.sent == 0
    session = await db.read(lambda conn: threepid.get_session(conn, "sid1"))
    assert session is not None and session.send_error is not None
    assert "Connect" in session.send_error or "refused" in session.send_error.lower()


async def test_run_wakes_on_new_mail_and_stops_when_cancelled(db: Database) -> None:
    sink = SMTPSink().start()
    try:
        queue = EmailQueue(db, Mailer(config(sink.port)), config(sink.port))
        task = asyncio.create_task(queue.run())
        await asyncio.sleep(0.05)
        await queue_mail(db, "c@example.org")
        queue.wake()
        await asyncio.to_thread(sink.wait_for, "c@example.org")
        # Stopping is prompt even when the cancel races a send (aiosmtplib's wait_for).
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done == {task}
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        sink.stop()


def test_logs_redact_addresses() -> None:
    assert _redact("alice@example.org") == "a***@example.org"
