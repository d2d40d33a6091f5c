"""The content repository: uploads (direct and async), downloads, quotas, administration.

https://spec.matrix.org/latest/client-server-api/#content-repository

Uploads stream: the body is written in chunks of `CHUNK_BYTES`, each its own short
write unit (a chunk row), so a 100 MB upload never sits whole in memory and never holds
the single writer thread for long; the next chunk is received while the previous one is
written. The media row stays in state 'uploading' (never served) until the last chunk is
in and its hash is known; any failure (too long, too short, over quota, client gone)
removes what was written. Limits are checked against Content-Length before reading and
against the bytes as they arrive (a chunked body has no Content-Length).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import apsw

from dendrite_lite.clock import now_ms
from dendrite_lite.config import MediaConfig
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, not_found
from dendrite_lite.storage import media as store
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.media import Media

log = logging.getLogger(__name__)

# Larger chunks mean fewer commits (upload) and read hops (download): 4 MiB doubles
# download speed over 1 MiB for ~10 MiB more memory per transfer (bench_media.py).
CHUNK_BYTES = 4 * 1024 * 1024
DEFAULT_WAIT_MS = 20_000
# https://spec.matrix.org/latest/client-server-api/#security-considerations-5: media IDs
# are [A-Za-z0-9_-] only (no traversal through odd characters).
MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_CONTENT_TYPE = re.compile(r"^[\x21-\x7e]+/[\x21-\x7e]+(\s*;[\x20-\x7e]*)?$")


class ClientGone(Exception):
    """The request body ended early (the client disconnected)."""


@dataclass(frozen=True)
class MxcUri:
    server_name: str
    media_id: str

    def __str__(self) -> str:
        return f"mxc://{self.server_name}/{self.media_id}"


def new_media_id() -> str:
    """A random ID that never begins with "-".

    Operators paste media IDs into `dendrite-lite media ...`, where a leading "-"
    would be read as an option (one upload in 64 would have needed `--`).
    """
    while True:
        media_id = secrets.token_urlsafe(18)
        if not media_id.startswith("-"):
            return media_id


def check_content_type(content_type: str | None) -> str:
    if content_type is None or not content_type.strip():
        return "application/octet-stream"
    value = content_type.strip()
    if len(value) > 255 or not _CONTENT_TYPE.match(value):
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid Content-Type")
    return value


def check_filename(filename: str | None) -> str | None:
    if filename is None or filename == "":
        return None
    if len(filename) > 255 or any(ord(ch) < 0x20 or ch == "\x7f" for ch in filename):
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid filename")
    return filename


def quota_exceeded() -> MatrixError:
    # https://spec.matrix.org/latest/client-server-api/#security-considerations-5
    return forbidden("Media quota exceeded")


def too_large(limit: int) -> MatrixError:
    return MatrixError(413, ErrCode.TOO_LARGE, f"Cannot upload files larger than {limit} bytes")


class Uploaded:
    """Wakes downloads waiting for an async upload (in-memory: waiters are too). A
    waiter subscribes BEFORE it reads the media's state, so an upload completing in
    between still wakes it; an event lives only while someone waits on it."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.Event, int]] = {}

    def subscribe(self, media_id: str) -> asyncio.Event:
        event, waiters = self._waiting.get(media_id, (asyncio.Event(), 0))
        self._waiting[media_id] = (event, waiters + 1)
        return event

    def unsubscribe(self, media_id: str, event: asyncio.Event) -> None:
        current = self._waiting.get(media_id)
        if current is None or current[0] is not event:
            return  # already woken (done() removed it)
        if current[1] <= 1:
            del self._waiting[media_id]
        else:
            self._waiting[media_id] = (event, current[1] - 1)

    def done(self, media_id: str) -> None:
        entry = self._waiting.pop(media_id, None)
        if entry is not None:
            entry[0].set()


class MediaRepository:
    def __init__(
        self,
        db: Database,
        config: MediaConfig,
        server_name: str,
    ) -> None:
        self.db = db
        self.config = config
        self.server_name = server_name
        self.uploaded = Uploaded()

    # -- uploads -------------------------------------------------------------------

    async def create(self, user_id: str) -> tuple[MxcUri, int]:
        """POST /create: reserve a media ID the user fills later with PUT."""
        now = now_ms()
        expires = now + self.config.unused_expires_after_ms
        media_id = new_media_id()
        limit = self.config.max_pending_uploads

        def reserve(conn: apsw.Connection) -> int:
            store.delete_expired_pending(conn, now)
            pending = store.count_pending(conn, user_id, now)
            if pending < limit:
                store.create_pending(
                    conn, media_id, user_id, now, expires, self.config.freeze_unauthenticated
                )
            return pending

        if await self.db.write(reserve) >= limit:
            raise MatrixError(
                429,
                ErrCode.LIMIT_EXCEEDED,
                f"At most {limit} media IDs may wait for their upload",
                retry_after_ms=60_000,
            )
        return MxcUri(self.server_name, media_id), expires

    async def upload(
        self,
        user_id: str | None,
        body: AsyncIterator[bytes],
        declared_length: int | None,
        content_type: str,
        filename: str | None,
        *,
        media_id: str | None = None,
    ) -> MxcUri:
        """Store a body as new media (or fill the pending `media_id`); returns its URI."""
        limit = self.config.max_upload_size
        if declared_length is not None and declared_length > limit:
            raise too_large(limit)
        allowance = await self._quota_left(user_id)
        if declared_length is not None and declared_length > allowance:
            raise quota_exceeded()
        media_id, pending = media_id or new_media_id(), media_id is not None
        await self._begin(user_id, media_id, pending, declared_length or 0, content_type, filename)
        try:
            size, digest = await self._write_content(
                media_id, body, declared_length, min(limit, allowance)
            )

            def finish(conn: apsw.Connection) -> None:
                store.finish_upload(conn, media_id, digest, size)

            await self.db.write(finish)
        except BaseException:
            await asyncio.shield(self._abort(media_id, pending))
            raise
        self.uploaded.done(media_id)
        return MxcUri(self.server_name, media_id)

    async def _quota_left(self, user_id: str | None) -> int:
        quota = self.config.max_bytes_per_user
        if not quota or user_id is None:
            return self.config.max_upload_size
        used = await self.db.read(lambda conn: store.usage(conn, user_id))
        return max(0, quota - used)

    async def _begin(
        self,
        user_id: str | None,
        media_id: str,
        pending: bool,
        size: int,
        content_type: str,
        filename: str | None,
    ) -> None:
        now = now_ms()
        frozen = self.config.freeze_unauthenticated

        def begin(conn: apsw.Connection) -> None:
            if not pending:
                store.begin_upload(
                    conn, media_id, user_id, size, content_type, filename, now, frozen
                )
                return
            existing = store.get(conn, media_id)
            if existing is None or (
                existing.state == "pending"
                and existing.unused_expires_ts is not None
                and existing.unused_expires_ts <= now
            ):
                raise not_found("Unknown or expired media ID")
            if existing.user_id != user_id:
                raise forbidden("This media ID was created by another user")
            if not store.claim_pending(conn, media_id, size, content_type, filename):
                raise MatrixError(409, ErrCode.CANNOT_OVERWRITE_MEDIA, "Media already uploaded")

        await self.db.write(begin)

    async def _write_content(
        self, media_id: str, body: AsyncIterator[bytes], declared: int | None, limit: int
    ) -> tuple[int, str]:
        """Write the body chunk by chunk; the next chunk is received while the previous
        one is being written (at most one write in flight: two chunks in memory).
        Returns the size and the SHA-256."""
        sha = hashlib.sha256()
        size = seq = 0
        buffer = bytearray()
        in_flight: asyncio.Future[None] | None = None
        try:
            async for part in _then_end(body):
                if part:
                    size += len(part)
                    if declared is not None and size > declared:
                        raise MatrixError(
                            400, ErrCode.INVALID_PARAM, "The body is longer than its Content-Length"
                        )
                    if size > limit:
                        raise (
                            too_large(limit)
                            if size > self.config.max_upload_size
                            else quota_exceeded()
                        )
                    sha.update(part)
                rest = memoryview(part or b"")
                # Every chunk but the last is exactly CHUNK_BYTES, so a byte range maps
                # to chunks by division (range requests).
                while len(rest) or (part is None and buffer):
                    take = CHUNK_BYTES - len(buffer)
                    buffer += rest[:take]
                    rest = rest[take:]
                    if len(buffer) < CHUNK_BYTES and part is not None:
                        break
                    # The buffer itself goes to the writer thread (no copy); a new one
                    # collects the next chunk meanwhile.
                    chunk, buffer = buffer, bytearray()

                    def write_chunk(
                        conn: apsw.Connection, chunk: bytearray = chunk, seq: int = seq
                    ) -> None:
                        store.write_chunk(conn, media_id, seq, chunk)

                    seq += 1
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.ensure_future(self.db.write(write_chunk))
            if in_flight is not None:
                await in_flight
                in_flight = None
        finally:
            if in_flight is not None:
                # Let a write already queued finish before the caller removes the rows.
                await asyncio.gather(in_flight, return_exceptions=True)
        if declared is not None and size != declared:
            raise MatrixError(
                400, ErrCode.INVALID_PARAM, f"The body ended after {size} of its {declared} bytes"
            )
        return size, sha.hexdigest()

    async def _abort(self, media_id: str, back_to_pending: bool) -> None:
        def abort(conn: apsw.Connection) -> None:
            store.abort_upload(conn, media_id, back_to_pending=back_to_pending)

        try:
            await self.db.write(abort)
        except Exception:
            log.exception("could not remove the partial upload %s", media_id)

    async def recover(self) -> None:
        """At start: remove uploads a crash cut off."""
        await self.db.write(store.recover_interrupted)

    # -- downloads -----------------------------------------------------------------

    async def metadata(
        self, server_name: str, media_id: str, timeout_ms: int | None = None
    ) -> Media:
        """Complete, servable media, waiting up to `timeout_ms` for an async upload."""
        if server_name != self.server_name or not MEDIA_ID.match(media_id):
            # No federation yet: remote media is unknown here.
            raise not_found("Media not found")
        wait_ms = DEFAULT_WAIT_MS if timeout_ms is None else timeout_ms
        if wait_ms < 0:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "timeout_ms must not be negative")
        wait_s = min(wait_ms, self.config.max_wait_ms) / 1000
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        uploaded = self.uploaded.subscribe(media_id)
        try:
            while True:
                media = await self.db.read(lambda conn: store.get(conn, media_id))
                if media is None or media.quarantined:
                    raise not_found("Media not found")
                if media.state == "complete":
                    return media
                if (
                    media.state == "pending"
                    and media.unused_expires_ts is not None
                    and media.unused_expires_ts <= now_ms()
                ):
                    raise not_found("Media not found")
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise MatrixError(
                        504, ErrCode.NOT_YET_UPLOADED, "Content has not yet been uploaded"
                    )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await uploaded.wait()
        finally:
            self.uploaded.unsubscribe(media_id, uploaded)

    async def content(
        self, media: Media, first: int = 0, last: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes `first`..`last` (inclusive; default: all) chunk by chunk, one read unit
        each, never whole in memory."""
        media_id = media.media_id
        end = media.size if last is None else min(last + 1, media.size)
        if first >= end:
            return
        size = await self.db.read(lambda conn: store.chunk_bytes(conn, media_id))
        if size <= 0:
            return
        position = first
        while position < end:
            seq, start = divmod(position, size)
            length = min(size - start, end - position)

            def read_chunk(
                conn: apsw.Connection, seq: int = seq, start: int = start, length: int = length
            ) -> bytes | None:
                return store.read_chunk(conn, media_id, seq, start, length)

            chunk = await self.db.read(read_chunk)
            if not chunk:
                return  # deleted while being served
            position += len(chunk)
            yield chunk

    # -- administration (the admin API and CLI build on these) ----------------------

    async def list_user_media(self, user_id: str) -> list[Media]:
        return await self.db.read(lambda conn: store.list_by_user(conn, user_id))

    async def set_quarantined(self, media_id: str, quarantined: bool = True) -> bool:
        return await self.db.write(lambda conn: store.set_quarantined(conn, media_id, quarantined))

    async def delete(self, media_id: str) -> bool:
        return await self.db.write(lambda conn: store.delete(conn, media_id))


async def _then_end(body: AsyncIterator[bytes]) -> AsyncIterator[bytes | None]:
    """The body's parts, then None (so the last chunk is flushed in the same loop)."""
    async for part in body:
        yield part
    yield None
