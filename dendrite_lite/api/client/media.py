"""Content repository endpoints: https://spec.matrix.org/latest/client-server-api/#content-repository

Authenticated media (spec 1.11, MSC3916) under /_matrix/client/v1/media; uploads and
/create under /_matrix/media; the legacy unauthenticated download and thumbnail
endpoints serve only media uploaded before the freeze (`[media] freeze_unauthenticated`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

from litestar import Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import Response, Stream

from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.config import Config
from dendrite_lite.errors import ErrCode, MatrixError, not_found
from dendrite_lite.media.repository import MediaRepository, check_content_type, check_filename
from dendrite_lite.media.thumbnailing import Thumbnailer
from dendrite_lite.media.url_previews import UrlPreviews
from dendrite_lite.storage.media import Media

CLIENT_V1 = "/_matrix/client/v1/media"
MEDIA_V3 = "/_matrix/media/v3"
LEGACY = ("/_matrix/media/v3", "/_matrix/media/r0")

# https://spec.matrix.org/latest/client-server-api/#serving-inline-content
INLINE_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)
# https://spec.matrix.org/latest/client-server-api/#content-repo-security-considerations
CSP = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)


def content_disposition(content_type: str, filename: str | None) -> str:
    kind = "inline" if content_type.split(";")[0].strip().lower() in INLINE_TYPES else "attachment"
    if not filename:
        return kind
    if all(0x20 <= ord(ch) < 0x7F and ch not in '"\\;' for ch in filename):
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename*=utf-8''{quote(filename, safe='')}"


def media_headers(
    content_type: str, filename: str | None, *, authenticated: bool
) -> dict[str, str]:
    return {
        # As uploaded. Set here because Litestar would otherwise append
        # "; charset=utf-8" to any text/* type, contradicting the uploader's charset or
        # claiming UTF-8 for bytes that may be anything.
        "content-type": content_type,
        "Content-Disposition": content_disposition(content_type, filename),
        "Content-Security-Policy": CSP,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
        # Media never changes once complete; authenticated answers stay out of shared caches.
        "Cache-Control": (
            "private, max-age=86400" if authenticated else "public, max-age=86400, s-maxage=86400"
        ),
    }


def declared_length(request: Request[Any, Any, Any]) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid Content-Length")
    return int(value)


async def body_of(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except MatrixError:
        raise
    except Exception:
        # Litestar raises InternalServerException when the client disconnects mid-body.
        raise MatrixError(400, ErrCode.UNKNOWN, "The upload was cut off") from None


# -- uploads -----------------------------------------------------------------------


@post(f"{MEDIA_V3}/upload", status_code=200, request_max_body_size=None)
async def upload_content(
    request: Request[Any, Any, Any],
    media: NamedDependency[MediaRepository],
    thumbnailer: NamedDependency[Thumbnailer],
    requester: NamedDependency[Requester],
    filename: str | None = None,
) -> dict[str, Any]:
    """POST /_matrix/media/v3/upload"""
    content_type = check_content_type(request.headers.get("content-type"))
    name = check_filename(filename)
    length = declared_length(request)
    uri = await media.upload(requester.user_id, body_of(request), length, content_type, name)
    await _pregenerate(media, thumbnailer, uri.media_id)
    return {"content_uri": str(uri)}


@put(f"{MEDIA_V3}/upload/{{origin:str}}/{{media_id:str}}", request_max_body_size=None)
async def upload_content_to_mxc(
    request: Request[Any, Any, Any],
    media: NamedDependency[MediaRepository],
    thumbnailer: NamedDependency[Thumbnailer],
    requester: NamedDependency[Requester],
    origin: FromPath[str],
    media_id: FromPath[str],
    filename: str | None = None,
) -> dict[str, Any]:
    """PUT /_matrix/media/v3/upload/{serverName}/{mediaId}"""
    server_name, media_id = path_value(origin), path_value(media_id)
    if server_name != media.server_name:
        raise not_found("Unknown media ID")
    content_type = check_content_type(request.headers.get("content-type"))
    name = check_filename(filename)
    length = declared_length(request)
    await media.upload(
        requester.user_id, body_of(request), length, content_type, name, media_id=media_id
    )
    await _pregenerate(media, thumbnailer, media_id)
    return {}


async def _pregenerate(media: MediaRepository, thumbnailer: Thumbnailer, media_id: str) -> None:
    stored = await media.metadata(media.server_name, media_id, 0)
    await thumbnailer.pregenerate(stored)


@post("/_matrix/media/v1/create", status_code=200)
async def create_content(
    media: NamedDependency[MediaRepository], requester: NamedDependency[Requester]
) -> dict[str, Any]:
    """POST /_matrix/media/v1/create"""
    uri, expires = await media.create(requester.user_id)
    return {"content_uri": str(uri), "unused_expires_at": expires}


# -- config ------------------------------------------------------------------------


@get([f"{CLIENT_V1}/config", f"{MEDIA_V3}/config"])
async def get_config(
    config: NamedDependency[Config], requester: NamedDependency[Requester]
) -> dict[str, Any]:
    """GET /_matrix/client/v1/media/config (and the deprecated /_matrix/media/v3/config)"""
    return {"m.upload.size": config.media.max_upload_size}


# -- downloads ---------------------------------------------------------------------


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range of a ``Range: bytes=...`` header as (first, last), inclusive; None
    to send everything (no header, several ranges, or one we do not understand).
    https://www.rfc-editor.org/rfc/rfc9110#section-14.2 (video seeking in browsers)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, dash, last_text = header[6:].strip().partition("-")
    if not dash or not (first_text.isdigit() or last_text.isdigit()):
        return None
    if not first_text:  # "-N": the last N bytes
        suffix = int(last_text)
        if suffix == 0:
            raise_unsatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if first >= size:
        raise_unsatisfiable(size)
    last = int(last_text) if last_text.isdigit() else size - 1
    if last < first:
        return None
    return first, min(last, size - 1)


def raise_unsatisfiable(size: int) -> NoReturn:
    raise MatrixError(416, ErrCode.UNKNOWN, f"Range not satisfiable (size {size})")


def _stream(
    media: MediaRepository,
    stored: Media,
    filename: str | None,
    *,
    authenticated: bool,
    range_header: str | None = None,
) -> Stream:
    headers = media_headers(
        stored.content_type, filename or stored.upload_name, authenticated=authenticated
    )
    headers["Accept-Ranges"] = "bytes"
    wanted = byte_range(range_header, stored.size)
    if wanted is None:
        headers["Content-Length"] = str(stored.size)
        return Stream(media.content(stored), media_type=stored.content_type, headers=headers)
    first, last = wanted
    headers["Content-Length"] = str(last - first + 1)
    headers["Content-Range"] = f"bytes {first}-{last}/{stored.size}"
    return Stream(
        media.content(stored, first, last),
        media_type=stored.content_type,
        headers=headers,
        status_code=206,
    )


async def _download(
    media: MediaRepository,
    server_name: str,
    media_id: str,
    file_name: str | None,
    timeout_ms: int | None,
    range_header: str | None,
    *,
    authenticated: bool,
) -> Stream:
    stored = await media.metadata(path_value(server_name), path_value(media_id), timeout_ms)
    if not authenticated and stored.authenticated_only and media.config.freeze_unauthenticated:
        raise not_found("Media not found")
    return _stream(media, stored, file_name, authenticated=authenticated, range_header=range_header)


@get(
    [
        f"{CLIENT_V1}/download/{{origin:str}}/{{media_id:str}}",
        f"{CLIENT_V1}/download/{{origin:str}}/{{media_id:str}}/{{file_name:str}}",
    ]
)
async def get_content(
    media: NamedDependency[MediaRepository],
    requester: NamedDependency[Requester],
    origin: FromPath[str],
    media_id: FromPath[str],
    file_name: FromPath[str | None] = None,
    timeout_ms: int | None = None,
    range_header: Annotated[str | None, Parameter(header="range")] = None,
) -> Stream:
    """GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]"""
    name = path_value(file_name) if file_name else None
    return await _download(
        media, origin, media_id, name, timeout_ms, range_header, authenticated=True
    )


@get(
    [
        *(f"{prefix}/download/{{origin:str}}/{{media_id:str}}" for prefix in LEGACY),
        *(
            f"{prefix}/download/{{origin:str}}/{{media_id:str}}/{{file_name:str}}"
            for prefix in LEGACY
        ),
    ]
)
async def get_content_legacy(
    media: NamedDependency[MediaRepository],
    origin: FromPath[str],
    media_id: FromPath[str],
    file_name: FromPath[str | None] = None,
    timeout_ms: int | None = None,
    range_header: Annotated[str | None, Parameter(header="range")] = None,
) -> Stream:
    """GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}] (deprecated)"""
    name = path_value(file_name) if file_name else None
    return await _download(
        media, origin, media_id, name, timeout_ms, range_header, authenticated=False
    )


async def _thumbnail(
    media: MediaRepository,
    thumbnailer: Thumbnailer,
    server_name: str,
    media_id: str,
    width_param: str | None,
    height_param: str | None,
    method: str,
    animated: bool,
    timeout_ms: int | None,
    *,
    authenticated: bool,
) -> Response[bytes] | Stream:
    width = _dimension("width", width_param)
    height = _dimension("height", height_param)
    if method not in ("crop", "scale"):
        raise MatrixError(400, ErrCode.INVALID_PARAM, "method must be crop or scale")
    stored = await media.metadata(path_value(server_name), path_value(media_id), timeout_ms)
    if not authenticated and stored.authenticated_only and media.config.freeze_unauthenticated:
        raise not_found("Media not found")
    answer = await thumbnailer.thumbnail(stored, width, height, method, animated)
    if answer.data is None:
        return _stream(media, stored, None, authenticated=authenticated)
    headers = media_headers(answer.content_type, None, authenticated=authenticated)
    return Response(answer.data, media_type=answer.content_type, headers=headers)


def _dimension(name: str, value: str | None) -> int:
    """Query parameters parsed here rather than by Litestar: authentication (401) comes
    before parameter errors (400)."""
    if value is None:
        raise MatrixError(400, ErrCode.MISSING_PARAM, f"Missing parameter {name}")
    if not value.isdigit() or not 0 < int(value) <= 100_000:
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"{name} must be a positive integer")
    return int(value)


@get(f"{CLIENT_V1}/thumbnail/{{origin:str}}/{{media_id:str}}")
async def get_content_thumbnail(
    media: NamedDependency[MediaRepository],
    thumbnailer: NamedDependency[Thumbnailer],
    requester: NamedDependency[Requester],
    origin: FromPath[str],
    media_id: FromPath[str],
    width: str | None = None,
    height: str | None = None,
    method: str = "scale",
    animated: bool = False,
    timeout_ms: int | None = None,
) -> Response[bytes] | Stream:
    """GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"""
    return await _thumbnail(
        media,
        thumbnailer,
        origin,
        media_id,
        width,
        height,
        method,
        animated,
        timeout_ms,
        authenticated=True,
    )


@get([f"{prefix}/thumbnail/{{origin:str}}/{{media_id:str}}" for prefix in LEGACY])
async def get_content_thumbnail_legacy(
    media: NamedDependency[MediaRepository],
    thumbnailer: NamedDependency[Thumbnailer],
    origin: FromPath[str],
    media_id: FromPath[str],
    width: str | None = None,
    height: str | None = None,
    method: str = "scale",
    animated: bool = False,
    timeout_ms: int | None = None,
) -> Response[bytes] | Stream:
    """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (deprecated)"""
    return await _thumbnail(
        media,
        thumbnailer,
        origin,
        media_id,
        width,
        height,
        method,
        animated,
        timeout_ms,
        authenticated=False,
    )


# -- URL previews ------------------------------------------------------------------


@get([f"{CLIENT_V1}/preview_url", f"{MEDIA_V3}/preview_url"])
async def preview_url(
    url_previews: NamedDependency[UrlPreviews],
    requester: NamedDependency[Requester],
    url: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """GET /_matrix/client/v1/media/preview_url"""
    if url is None:
        raise MatrixError(400, ErrCode.MISSING_PARAM, "Missing parameter url")
    return await url_previews.preview(requester.user_id, url)


ROUTES = [
    upload_content,
    upload_content_to_mxc,
    create_content,
    get_config,
    get_content,
    get_content_legacy,
    get_content_thumbnail,
    get_content_thumbnail_legacy,
    preview_url,
]
