"""URL previews: https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1mediapreview_url

The server fetches a URL a user chose, so every fetch (the page, its og:image, every
redirect) goes through the outbound client (dendrite_lite/outbound_http.py), which
refuses non-public addresses. Off unless `[url_previews] enabled`. Answers are cached
by URL in the database for `cache_ttl_ms`; fetches are rate-limited per user.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import apsw
import msgspec

from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.clock import now_ms
from dendrite_lite.config import UrlPreviewConfig
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.media import opengraph
from dendrite_lite.media.repository import MediaRepository, check_content_type
from dendrite_lite.media.thumbnailing import Thumbnailer
from dendrite_lite.outbound_http import (
    OutboundClient,
    OutboundError,
    OutboundPolicy,
    RequestRefused,
    Response,
    ResponseTooLarge,
    parse_target,
)
from dendrite_lite.storage import media as store
from dendrite_lite.storage.db import Database

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_URL_CHARS = 2048
OEMBED_MAX_BYTES = 64 * 1024


def policy_of(config: UrlPreviewConfig) -> OutboundPolicy:
    return OutboundPolicy.from_config(
        allowed_ranges=config.allowed_ranges,
        denied_ranges=config.denied_ranges,
        allowed_ports=config.allowed_ports,
        max_redirects=config.max_redirects,
        timeout_s=timedelta(milliseconds=config.timeout_ms).total_seconds(),
        max_response_bytes=config.max_page_bytes,
    )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _media_type(response: Response) -> str:
    return response.headers.get("content-type", "application/octet-stream").strip()


def _filename(url: str) -> str | None:
    name = posixpath.basename(unquote(urlsplit(url).path))
    return name[:255] or None


class UrlPreviews:
    def __init__(
        self,
        db: Database,
        config: UrlPreviewConfig,
        media: MediaRepository,
        thumbnailer: Thumbnailer,
        client: OutboundClient | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.media = media
        self.thumbnailer = thumbnailer
        self.policy = policy_of(config)
        self.client = client or OutboundClient(self.policy, user_agent="dendrite-lite (preview)")
        self.limiter = RateLimiter(config.per_second, config.burst)

    async def preview(self, user_id: str, url: str) -> dict[str, Any]:
        if not self.config.enabled:
            raise MatrixError(404, ErrCode.UNRECOGNIZED, "URL previews are disabled")
        if len(url) > MAX_URL_CHARS:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "URL too long")
        try:
            parse_target(url, self.policy)
        except RequestRefused as exc:
            raise MatrixError(
                400, ErrCode.INVALID_PARAM, f"Cannot preview this URL: {exc}"
            ) from None
        now = now_ms()
        cached = await self.db.read(lambda conn: store.cached_preview(conn, url, now))
        if cached is not None:
            answer: dict[str, Any] = msgspec.json.decode(cached)
            return answer
        self.limiter.check_and_spend(user_id)
        og = await self._fetch(url)
        encoded = msgspec.json.encode(og)
        expires = now + self.config.cache_ttl_ms

        def remember(conn: apsw.Connection) -> None:
            store.cache_preview(conn, url, encoded, now, expires)

        await self.db.write(remember)
        return og

    async def _fetch(self, url: str) -> dict[str, Any]:
        try:
            largest = max(self.config.max_page_bytes, self.config.max_image_bytes)
            response = await self.client.get(url, max_bytes=largest)
        except RequestRefused as exc:
            raise MatrixError(403, ErrCode.FORBIDDEN, f"Cannot preview this URL: {exc}") from None
        except ResponseTooLarge:
            raise MatrixError(502, ErrCode.TOO_LARGE, "The page is too large to preview") from None
        except OutboundError as exc:
            raise MatrixError(502, ErrCode.UNKNOWN, f"Could not fetch the URL: {exc}") from None
        if not 200 <= response.status < 300:
            raise MatrixError(502, ErrCode.UNKNOWN, f"The URL answered with HTTP {response.status}")
        media_type = _media_type(response)
        base = media_type.split(";")[0].strip().lower()
        if base in HTML_TYPES:
            page = response.body[: self.config.max_page_bytes]
            parsed, oembed_url = opengraph.parse_page(page, media_type, response.url)
            if oembed_url and ("og:title" not in parsed or "og:image" not in parsed):
                document = await self._oembed(oembed_url)
                parsed = opengraph.from_oembed(document, parsed, oembed_url)
            og: dict[str, Any] = dict(parsed)
            image_url = og.pop("og:image", None)
            for key in ("og:image:width", "og:image:height", "og:image:type"):
                og.pop(key, None)
            if image_url:
                og.update(await self._image_from(image_url))
            return og
        if base.startswith("image/"):
            image = await self._store_image(response)
            return {"og:title": _filename(response.url) or response.url, **image}
        # Other types: nothing to show beyond the address.
        return {"og:url": response.url}

    async def _oembed(self, url: str) -> object:
        """The page's oEmbed document, fetched through the same client; None if it
        cannot be had (the preview goes on without it)."""
        try:
            response = await self.client.get(url, max_bytes=OEMBED_MAX_BYTES)
            if 200 <= response.status < 300:
                return msgspec.json.decode(response.body)
        except (OutboundError, msgspec.DecodeError) as exc:
            log.info("oEmbed %s not used: %s", url, exc)
        return None

    async def _image_from(self, url: str) -> dict[str, Any]:
        """The og:image fetched through the same client and stored as media; {} if it
        cannot be (a preview without its picture is still a preview)."""
        try:
            response = await self.client.get(url, max_bytes=self.config.max_image_bytes)
        except OutboundError as exc:
            log.info("preview image %s not fetched: %s", url, exc)
            return {}
        media_type = _media_type(response).split(";")[0].strip().lower()
        if not 200 <= response.status < 300 or not media_type.startswith("image/"):
            return {}
        return await self._store_image(response)

    async def _store_image(self, response: Response) -> dict[str, Any]:
        try:
            content_type = check_content_type(_media_type(response))
        except MatrixError:
            content_type = "application/octet-stream"
        if len(response.body) > self.config.max_image_bytes:
            return {}
        uri = await self.media.upload(
            None, _once(response.body), len(response.body), content_type, _filename(response.url)
        )
        stored = await self.media.metadata(uri.server_name, uri.media_id, 0)
        await self.thumbnailer.pregenerate(stored)
        stored = await self.media.metadata(uri.server_name, uri.media_id, 0)
        image: dict[str, Any] = {
            "og:image": str(uri),
            "og:image:type": stored.content_type,
            "matrix:image:size": stored.size,
        }
        if stored.width is not None and stored.height is not None:
            image["og:image:width"] = stored.width
            image["og:image:height"] = stored.height
        return image
