"""Thumbnails: the spec's recommended sizes made at upload, others on request, all cached
in the database. https://spec.matrix.org/latest/client-server-api/#thumbnails

Pillow runs in a worker thread (never on the event loop), one image at a time so that
thumbnailing cannot take both cores of a small machine from everything else.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import apsw

from dendrite_lite.config import MediaConfig
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.media import images
from dendrite_lite.storage import media as store
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.media import Media

log = logging.getLogger(__name__)

# On-request sizes cached per media at most (a client cannot fill the disk with sizes).
MAX_CACHED_PER_MEDIA = 24
# Formats that may be animated: their original is never served for animated=false.
MAYBE_ANIMATED = ("image/gif", "image/webp")
THUMBNAILABLE_PREFIX = "image/"


@dataclass(frozen=True)
class ThumbnailAnswer:
    """A thumbnail's bytes, or None: serve the original content (it fits the box)."""

    data: bytes | None
    content_type: str


def cannot_thumbnail() -> MatrixError:
    return MatrixError(400, ErrCode.UNKNOWN, "Cannot generate thumbnails for the requested content")


def too_large_to_thumbnail() -> MatrixError:
    return MatrixError(413, ErrCode.TOO_LARGE, "Content is too large to thumbnail")


class Thumbnailer:
    def __init__(self, db: Database, config: MediaConfig) -> None:
        self.db = db
        self.config = config
        self._pillow = asyncio.Semaphore(1)

    async def _content(self, media: Media) -> bytes:
        if media.size > self.config.max_thumbnail_source_bytes:
            raise too_large_to_thumbnail()
        media_id = media.media_id
        data = await self.db.read(lambda conn: store.read_all(conn, media_id))
        if data is None:
            raise MatrixError(404, ErrCode.NOT_FOUND, "Media not found")
        return data

    async def pregenerate(self, media: Media) -> None:
        """Record an image's size and make the recommended thumbnails; never fails the
        upload (a file that is not really an image simply gets none)."""
        if not media.content_type.startswith(THUMBNAILABLE_PREFIX):
            return
        if media.size > self.config.max_thumbnail_source_bytes:
            return
        data = await self._content(media)
        max_pixels = self.config.max_thumbnail_pixels

        def make_all() -> tuple[images.ImageInfo, list[tuple[store.Thumbnail, bytes]]]:
            info = images.probe(data, max_pixels)
            boxes = list(images.RECOMMENDED_SIZES)
            thumbs = images.still_thumbnails(data, boxes, max_pixels, info)
            made: list[tuple[store.Thumbnail, bytes]] = []
            for (width, height, method), thumb in zip(boxes, thumbs, strict=True):
                if thumb is not None:
                    key = store.Thumbnail(width, height, method, False, thumb.content_type, 0)
                    made.append((key, thumb.data))
            return info, made

        try:
            async with self._pillow:
                info, made = await asyncio.to_thread(make_all)
        except (images.NotAnImage, images.ImageTooLarge) as exc:
            log.info("no thumbnails for %s: %s", media.media_id, exc)
            return
        except Exception:
            # Pillow can fail in ways no list covers; the upload itself succeeded.
            log.exception("making thumbnails of %s failed", media.media_id)
            return

        def save(conn: apsw.Connection) -> None:
            store.set_dimensions(conn, media.media_id, info.width, info.height)
            for key, blob in made:
                store.put_thumbnail(conn, media.media_id, key, blob)

        await self.db.write(save)

    async def thumbnail(
        self, media: Media, width: int, height: int, method: str, animated: bool
    ) -> ThumbnailAnswer:
        if media.width is not None and media.height is not None:
            fits = media.width <= width and media.height <= height
            if fits and (animated or media.content_type not in MAYBE_ANIMATED):
                return ThumbnailAnswer(None, media.content_type)
        media_id = media.media_id
        cached = await self.db.read(lambda conn: store.thumbnails(conn, media_id))
        best = _best_cached(cached, width, height, method, animated, self.config.dynamic_thumbnails)
        if best is not None:

            def read(conn: apsw.Connection) -> bytes | None:
                return store.thumbnail_data(
                    conn, media_id, best.width, best.height, best.method, best.animated
                )

            data = await self.db.read(read)
            if data is not None:
                return ThumbnailAnswer(data, best.content_type)
        content = await self._content(media)
        max_pixels = self.config.max_thumbnail_pixels
        try:
            async with self._pillow:
                made = await asyncio.to_thread(
                    images.thumbnail, content, width, height, method, animated, max_pixels
                )
        except images.NotAnImage:
            raise cannot_thumbnail() from None
        except images.ImageTooLarge:
            raise too_large_to_thumbnail() from None
        except Exception:
            log.exception("thumbnailing %s failed", media_id)
            raise cannot_thumbnail() from None
        if made is None:
            return ThumbnailAnswer(None, media.content_type)
        if len(cached) < MAX_CACHED_PER_MEDIA:
            key = store.Thumbnail(width, height, method, animated, made.content_type, 0)

            def save(conn: apsw.Connection) -> None:
                store.put_thumbnail(conn, media_id, key, made.data)

            await self.db.write(save)
        return ThumbnailAnswer(made.data, made.content_type)


def _best_cached(
    cached: list[store.Thumbnail],
    width: int,
    height: int,
    method: str,
    animated: bool,
    dynamic: bool,
) -> store.Thumbnail | None:
    """The smallest cached thumbnail at least as large as asked, same method and
    animation (and, for crop, the same aspect); without dynamic thumbnails, the nearest."""
    fitting = [
        t
        for t in cached
        if t.method == method
        and t.animated == animated
        and t.width >= width
        and t.height >= height
        and (method == "scale" or t.width * height == t.height * width)
    ]
    if fitting:
        return min(fitting, key=lambda t: t.width * t.height)
    if dynamic:
        return None
    same_kind = [t for t in cached if t.animated == animated]
    if not same_kind:
        return None
    return max(same_kind, key=lambda t: min(t.width, width) * min(t.height, height))
