"""The outgoing mail queue: one background task, never in a request's path.

A request that mails (requestToken) only inserts a row into `email_queue` in its own
write unit and wakes this task. The task sends what is due; a failure (SMTP down, a
timeout, a refusal) is retried with exponential backoff (retry_first_delay_ms doubling
to retry_max_delay_ms). A mail still failing give_up_after_ms after it was queued is
dropped and its validation session marked with the error, so the user's next step (the
UIA stage, or the link page) says the mail could not be delivered instead of waiting
forever. Rows survive a restart: what was pending is sent after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import apsw

from dendrite_lite.clock import now_ms
from dendrite_lite.config import EmailConfig
from dendrite_lite.storage import email_queue, threepid
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.email_queue import QueuedEmail
from dendrite_lite.threepid.mailer import Mailer, SendError
from dendrite_lite.threepid.templates import RenderedEmail

log = logging.getLogger(__name__)

BATCH = 20
IDLE_WAIT_S = 300.0
ERROR_WAIT_S = 30.0


class EmailQueue:
    def __init__(self, db: Database, mailer: Mailer, config: EmailConfig) -> None:
        self.db = db
        self.mailer = mailer
        self.config = config
        self._wake = asyncio.Event()
        self.sent = 0
        self.given_up = 0

    def wake(self) -> None:
        """Something was queued (call after the write that queued it committed)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            _raise_if_cancelled()
            self._wake.clear()
            try:
                wait = await self.send_due()
            except Exception:
                log.exception("email queue: sending failed unexpectedly")
                wait = ERROR_WAIT_S
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            # that arrives as the wake-up does, and shutdown would then hang.
            _raise_if_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def send_due(self) -> float:
        """Send every mail that is due; returns seconds until the next one is."""
        while True:
            batch = await self.db.read(_due_now)
            for mail in batch:
                _raise_if_cancelled()
                await self._send_one(mail)
            if len(batch) < BATCH:
                break
        next_ts = await self.db.read(email_queue.next_due_ts)
        if next_ts is None:
            return IDLE_WAIT_S
        return max(0.0, min(IDLE_WAIT_S, (next_ts - now_ms()) / 1000))

    async def _send_one(self, mail: QueuedEmail) -> None:
        try:
            await self.mailer.send(
                mail.recipient, RenderedEmail(mail.subject, mail.text_body, mail.html_body)
            )
        except SendError as exc:
            await self._failed(mail, str(exc))
            return

        def sent(conn: apsw.Connection) -> None:
            email_queue.delete(conn, mail.id)

        await self.db.write(sent)
        self.sent += 1
        log.info("email queue: sent %r to %s", mail.subject, _redact(mail.recipient))

    async def _failed(self, mail: QueuedEmail, error: str) -> None:
        config = self.config
        now = now_ms()
        delay = min(config.retry_first_delay_ms * 2**mail.attempts, config.retry_max_delay_ms)
        give_up = now + delay > mail.created_ts + config.give_up_after_ms

        def record(conn: apsw.Connection) -> None:
            if give_up:
                email_queue.delete(conn, mail.id)
                if mail.sid is not None:
                    threepid.set_send_error(conn, mail.sid, error)
            else:
                email_queue.retry_later(conn, mail.id, now + delay, error)

        await self.db.write(record)
        if give_up:
            self.given_up += 1
            log.warning(
                "email queue: gave up on mail to %s after %d attempts: %s",
                _redact(mail.recipient),
                mail.attempts + 1,
                error,
            )
        else:
            log.warning(
                "email queue: sending to %s failed (%s); retrying in %.0f s",
                _redact(mail.recipient),
                error,
                delay / 1000,
            )


def _raise_if_cancelled() -> None:
    """A cancel that an inner asyncio.wait_for swallowed (aiosmtplib uses it; Python 3.11's
    can lose a cancellation that races its result) still stops the queue promptly."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _due_now(conn: apsw.Connection) -> list[QueuedEmail]:
    return email_queue.due(conn, now_ms(), BATCH)


def _redact(address: str) -> str:
    """Addresses are personal data: logs show only the first letter and the domain."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
