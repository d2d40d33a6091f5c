"""The content repository against the real server: uploads and downloads through
matrix-nio and httpx, headers, async uploads, the legacy freeze, quarantine/deletion
through the CLI, and thumbnails of real PNG/JPEG/GIF/WebP images made with Pillow."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    MemoryDownloadResponse,
    ThumbnailResponse,
    UploadResponse,
)
from PIL import Image

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server, run_cli
from tests.e2e.matrix import User, expect, register_user

V1 = "/_matrix/client/v1/media"
V3 = "/_matrix/media/v3"
CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)


def png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", (width, height), (10, 120, 200))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def animation(fmt: str, width: int, height: int, frames: int = 4) -> bytes:
    images = [Image.new("RGB", (width, height), (i * 60, 100, 255 - i * 60)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, fmt, save_all=True, append_images=images[1:], duration=80, loop=0)
    return buffer.getvalue()


def upload(
    http: httpx.Client,
    user: User,
    data: bytes,
    content_type: str = "application/octet-stream",
    filename: str | None = None,
) -> str:
    params = {"filename": filename} if filename else {}
    response = http.post(
        f"{V3}/upload",
        content=data,
        params=params,
        headers={**user.headers, "Content-Type": content_type},
    )
    uri: str = expect(response, 200)["content_uri"]
    assert uri.startswith("mxc://localhost/")
    return uri.removeprefix("mxc://")


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


@pytest.fixture
async def nio_user(server: Server) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(server.url, config=CONFIG)
    with server.client() as http:
        user = register_user(http)
    client.user_id, client.access_token, client.device_id = (
        user.user_id,
        user.access_token,
        user.device_id,
    )
    try:
        yield client
    finally:
        await client.close()


async def test_nio_uploads_and_downloads_a_file(nio_user: AsyncClient) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    response, _keys = await nio_user.upload(
        io.BytesIO(data), content_type="application/pdf", filename="report.pdf", filesize=len(data)
    )
    assert isinstance(response, UploadResponse), response
    downloaded = await nio_user.download(response.content_uri)
    assert isinstance(downloaded, MemoryDownloadResponse), downloaded
    assert downloaded.body == data
    assert downloaded.content_type == "application/pdf"
    assert downloaded.filename == "report.pdf"
    renamed = await nio_user.download(response.content_uri, filename="other name.pdf")
    assert isinstance(renamed, MemoryDownloadResponse)
    assert renamed.filename == "other name.pdf"


async def test_nio_encrypted_attachment_round_trip(nio_user: AsyncClient) -> None:
    # What E2EE rooms send: the client encrypts, the server stores opaque bytes.
    from nio.crypto.attachments import decrypt_attachment

    data = os.urandom(700_000)
    response, keys = await nio_user.upload(
        io.BytesIO(data),
        content_type="application/octet-stream",
        encrypt=True,
        filesize=len(data),
    )
    assert isinstance(response, UploadResponse), response
    assert keys is not None
    downloaded = await nio_user.download(response.content_uri)
    assert isinstance(downloaded, MemoryDownloadResponse)
    assert downloaded.body != data
    plain = decrypt_attachment(
        downloaded.body, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"]
    )
    assert plain == data


async def test_nio_thumbnail_of_an_uploaded_image(nio_user: AsyncClient) -> None:
    data = png(1000, 500)
    response, _ = await nio_user.upload(
        io.BytesIO(data), content_type="image/png", filename="wide.png", filesize=len(data)
    )
    assert isinstance(response, UploadResponse)
    server_name, media_id = response.content_uri.removeprefix("mxc://").split("/")
    thumb = await nio_user.thumbnail(server_name, media_id, 320, 240)
    assert isinstance(thumb, ThumbnailResponse), thumb
    assert thumb.content_type == "image/png"
    assert image_size(thumb.body) == (320, 160)


def test_download_headers(http: httpx.Client, user: User) -> None:
    mxc = upload(http, user, b"hello", "text/plain", "hello.txt")
    response = http.get(f"{V1}/download/{mxc}", headers=user.headers)
    assert response.status_code == 200
    assert response.content == b"hello"
    headers = response.headers
    # The type as uploaded: no charset claimed for bytes the server never looked at.
    assert headers.get_list("content-type") == ["text/plain"]
    assert headers["content-disposition"] == 'inline; filename="hello.txt"'
    assert headers["content-security-policy"].startswith("sandbox;")
    assert headers["cross-origin-resource-policy"] == "cross-origin"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-length"] == "5"
    assert "max-age" in headers["cache-control"]
    # HTML and SVG are never inline; non-ASCII names use RFC 5987.
    html = upload(http, user, b"<script>alert(1)</script>", "text/html", "päge.html")
    response = http.get(f"{V1}/download/{html}", headers=user.headers)
    assert response.headers["content-disposition"] == (
        "attachment; filename*=utf-8''p%C3%A4ge.html"
    )
    latin = upload(http, user, b"caf\xe9", "text/plain; charset=iso-8859-1")
    response = http.get(f"{V1}/download/{latin}", headers=user.headers)
    assert response.headers.get_list("content-type") == ["text/plain; charset=iso-8859-1"]
    svg = upload(http, user, b"<svg/>", "image/svg+xml")
    response = http.get(f"{V1}/download/{svg}/x.svg", headers=user.headers)
    assert response.headers["content-disposition"] == 'attachment; filename="x.svg"'


def test_upload_content_hash_and_sizes(http: httpx.Client, user: User) -> None:
    data = os.urandom(2_500_000)
    mxc = upload(http, user, data)
    response = http.get(f"{V1}/download/{mxc}", headers=user.headers)
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(data).hexdigest()
    empty = upload(http, user, b"")
    assert http.get(f"{V1}/download/{empty}", headers=user.headers).content == b""


def test_chunked_upload_without_content_length(http: httpx.Client, user: User) -> None:
    data = os.urandom(1_500_000)

    def body() -> Any:
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    response = http.post(
        f"{V3}/upload",
        content=body(),
        headers={**user.headers, "Content-Type": "application/octet-stream"},
    )
    mxc = expect(response, 200)["content_uri"].removeprefix("mxc://")
    assert http.get(f"{V1}/download/{mxc}", headers=user.headers).content == data


def test_config_and_authentication(http: httpx.Client, user: User) -> None:
    assert expect(http.get(f"{V1}/config", headers=user.headers), 200) == {
        "m.upload.size": 100 * 1024 * 1024
    }
    expect(http.get(f"{V3}/config", headers=user.headers), 200)
    expect(http.get(f"{V1}/config"), 401, "M_MISSING_TOKEN")
    mxc = upload(http, user, b"secret")
    expect(http.get(f"{V1}/download/{mxc}"), 401, "M_MISSING_TOKEN")
    expect(http.post(f"{V3}/upload", content=b"x"), 401, "M_MISSING_TOKEN")


def test_unknown_remote_and_malformed_media_ids(http: httpx.Client, user: User) -> None:
    for path in (
        "localhost/doesnotexist",
        "example.org/abcdef",
        "localhost/bad.id",
        "localhost/%2E%2E%2Fetc",
    ):
        expect(http.get(f"{V1}/download/{path}", headers=user.headers), 404, "M_NOT_FOUND")
        expect(
            http.get(
                f"{V1}/thumbnail/{path}", params={"width": 32, "height": 32}, headers=user.headers
            ),
            404,
            "M_NOT_FOUND",
        )


def test_legacy_endpoints_are_frozen(http: httpx.Client, user: User) -> None:
    mxc = upload(http, user, png(100, 100), "image/png")
    expect(http.get(f"{V3}/download/{mxc}"), 404, "M_NOT_FOUND")
    expect(http.get(f"/_matrix/media/r0/download/{mxc}"), 404, "M_NOT_FOUND")
    expect(
        http.get(f"{V3}/thumbnail/{mxc}", params={"width": 32, "height": 32}), 404, "M_NOT_FOUND"
    )


def test_legacy_endpoints_serve_media_when_not_frozen(server_factory: ServerFactory) -> None:
    server = server_factory({"media": {"freeze_unauthenticated": False}})
    with server.client() as http:
        user = register_user(http)
        mxc = upload(http, user, png(100, 100), "image/png", "p.png")
        response = http.get(f"{V3}/download/{mxc}")
        assert response.status_code == 200 and image_size(response.content) == (100, 100)
        assert response.headers["cache-control"].startswith("public")
        thumb = http.get(
            f"{V3}/thumbnail/{mxc}", params={"width": 32, "height": 32, "method": "crop"}
        )
        assert thumb.status_code == 200 and image_size(thumb.content) == (32, 32)


def test_async_upload_create_then_put(http: httpx.Client, user: User) -> None:
    created = expect(http.post("/_matrix/media/v1/create", headers=user.headers), 200)
    assert created["unused_expires_at"] > time.time() * 1000
    mxc = created["content_uri"].removeprefix("mxc://")
    # Not yet uploaded: 504 M_NOT_YET_UPLOADED once timeout_ms has passed.
    started = time.monotonic()
    expect(
        http.get(f"{V1}/download/{mxc}", params={"timeout_ms": 300}, headers=user.headers),
        504,
        "M_NOT_YET_UPLOADED",
    )
    assert time.monotonic() - started >= 0.25
    other = register_user(http)
    put = f"{V3}/upload/{mxc}"
    expect(http.put(put, content=b"x", headers=other.headers), 403, "M_FORBIDDEN")
    # A download waiting for the upload is answered as soon as it arrives.
    results: list[httpx.Response] = []

    def wait() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as waiter:
            results.append(
                waiter.get(
                    f"{V1}/download/{mxc}", params={"timeout_ms": 10_000}, headers=user.headers
                )
            )

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)
    response = http.put(
        put,
        content=b"arrived",
        params={"filename": "late.txt"},
        headers={**user.headers, "Content-Type": "text/plain"},
    )
    assert expect(response, 200) == {}
    thread.join(10)
    assert results and results[0].status_code == 200 and results[0].content == b"arrived"
    assert results[0].headers["content-disposition"] == 'inline; filename="late.txt"'
    expect(http.put(put, content=b"again", headers=user.headers), 409, "M_CANNOT_OVERWRITE_MEDIA")
    expect(
        http.put(f"{V3}/upload/localhost/neverCreated", content=b"x", headers=user.headers),
        404,
        "M_NOT_FOUND",
    )


def test_async_upload_reservations_are_limited(server_factory: ServerFactory) -> None:
    server = server_factory({"media": {"max_pending_uploads": 2}})
    with server.client() as http:
        user = register_user(http)
        for _ in range(2):
            expect(http.post("/_matrix/media/v1/create", headers=user.headers), 200)
        expect(http.post("/_matrix/media/v1/create", headers=user.headers), 429, "M_LIMIT_EXCEEDED")


def test_expired_reservations_cannot_be_filled(server_factory: ServerFactory) -> None:
    server = server_factory({"media": {"unused_expires_after_ms": 200}})
    with server.client() as http:
        user = register_user(http)
        created = expect(http.post("/_matrix/media/v1/create", headers=user.headers), 200)
        mxc = created["content_uri"].removeprefix("mxc://")
        time.sleep(max(0.0, created["unused_expires_at"] / 1000 - time.time()) + 0.2)
        response = http.put(f"{V3}/upload/{mxc}", content=b"x", headers=user.headers)
        expect(response, 404, "M_NOT_FOUND")
        expect(http.get(f"{V1}/download/{mxc}", headers=user.headers), 404, "M_NOT_FOUND")


# -- thumbnails -----------------------------------------------------------------------


def thumbnail(
    http: httpx.Client, user: User, mxc: str, width: int, height: int, **params: Any
) -> httpx.Response:
    return http.get(
        f"{V1}/thumbnail/{mxc}",
        params={"width": width, "height": height, **params},
        headers=user.headers,
    )


@pytest.mark.parametrize(
    ("width", "height", "method", "expected"),
    [
        (32, 32, "crop", (32, 32)),
        (96, 96, "crop", (96, 96)),
        (320, 240, "scale", (320, 240)),
        (640, 480, "scale", (640, 480)),
        (800, 600, "scale", (800, 600)),
        (50, 50, "crop", (96, 96)),  # the next pre-generated size up
        (100, 30, "crop", (100, 30)),  # made on request, in the asked aspect
        (200, 200, "scale", (320, 240)),
        (1000, 1000, "scale", (1000, 750)),  # made on request
        (1300, 1000, "scale", (1200, 900)),  # the original already fits: served as is
    ],
)
def test_thumbnail_sizes_of_a_png(
    http: httpx.Client, user: User, width: int, height: int, method: str, expected: tuple[int, int]
) -> None:
    mxc = upload(http, user, png(1200, 900), "image/png")
    response = thumbnail(http, user, mxc, width, height, method=method)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert image_size(response.content) == expected


def test_jpeg_thumbnails_follow_exif_orientation(http: httpx.Client, user: User) -> None:
    # Stored 800x400 landscape, but EXIF says "rotate 90": displayed 400x800.
    mxc = upload(http, user, jpeg(800, 400, orientation=6), "image/jpeg")
    response = thumbnail(http, user, mxc, 320, 240, method="scale")
    assert response.headers["content-type"] == "image/jpeg"
    assert image_size(response.content) == (120, 240)
    crop = thumbnail(http, user, mxc, 96, 96, method="crop")
    assert image_size(crop.content) == (96, 96)


def test_small_images_are_never_upscaled(http: httpx.Client, user: User) -> None:
    data = png(20, 10)
    mxc = upload(http, user, data, "image/png")
    response = thumbnail(http, user, mxc, 320, 240)
    assert response.content == data
    crop = thumbnail(http, user, mxc, 96, 96, method="crop")
    assert image_size(crop.content) == (20, 10)


@pytest.mark.parametrize(("fmt", "content_type"), [("GIF", "image/gif"), ("WEBP", "image/webp")])
def test_animated_thumbnails_only_when_asked(
    http: httpx.Client, user: User, fmt: str, content_type: str
) -> None:
    mxc = upload(http, user, animation(fmt, 400, 300), content_type)
    still = thumbnail(http, user, mxc, 96, 96, method="crop")
    assert still.status_code == 200
    with Image.open(io.BytesIO(still.content)) as image:
        assert not getattr(image, "is_animated", False)
        assert image.size == (96, 96)
    moving = thumbnail(http, user, mxc, 96, 96, method="crop", animated="true")
    assert moving.headers["content-type"] == content_type
    with Image.open(io.BytesIO(moving.content)) as image:
        assert image.is_animated and image.n_frames == 4
        assert image.size == (96, 96)
    # A small animated original: served as is when animation is wanted, as a still
    # when it is not.
    small = upload(http, user, animation(fmt, 40, 30), content_type)
    assert image_size(thumbnail(http, user, small, 96, 96, animated="true").content) == (40, 30)
    with Image.open(io.BytesIO(thumbnail(http, user, small, 96, 96).content)) as image:
        assert not getattr(image, "is_animated", False)


def test_animated_true_on_a_still_image_is_a_still(http: httpx.Client, user: User) -> None:
    mxc = upload(http, user, jpeg(640, 640), "image/jpeg")
    response = thumbnail(http, user, mxc, 96, 96, method="crop", animated="true")
    assert response.headers["content-type"] == "image/jpeg"
    assert image_size(response.content) == (96, 96)


def test_thumbnails_of_things_that_are_not_images(http: httpx.Client, user: User) -> None:
    text = upload(http, user, b"just text", "text/plain")
    expect(thumbnail(http, user, text, 32, 32), 400, "M_UNKNOWN")
    # An image that lies about its type: HTML sent as image/png.
    liar = upload(http, user, b"<html><script>x</script></html>", "image/png")
    expect(thumbnail(http, user, liar, 32, 32), 400, "M_UNKNOWN")
    # A truncated PNG: the header parses, the pixels do not.
    broken = upload(http, user, png(500, 500)[:120], "image/png")
    expect(thumbnail(http, user, broken, 32, 32), 400, "M_UNKNOWN")
    # A PNG sent as image/jpeg is still thumbnailed (the bytes decide).
    mislabeled = upload(http, user, png(300, 300), "image/jpeg")
    assert image_size(thumbnail(http, user, mislabeled, 32, 32, method="crop").content) == (32, 32)


def test_decompression_bombs_are_refused(http: httpx.Client, user: User) -> None:
    # 20000 x 20000 pixels of one colour: a tiny PNG that would decode into 1.6 GB.
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    bomb = buffer.getvalue()
    assert len(bomb) < 100_000
    mxc = upload(http, user, bomb, "image/png")
    expect(thumbnail(http, user, mxc, 32, 32), 413, "M_TOO_LARGE")
    # The upload itself is kept and served as a file.
    assert http.get(f"{V1}/download/{mxc}", headers=user.headers).content == bomb


def test_bad_thumbnail_parameters(http: httpx.Client, user: User) -> None:
    mxc = upload(http, user, png(100, 100), "image/png")
    expect(thumbnail(http, user, mxc, 0, 32), 400, "M_INVALID_PARAM")
    expect(thumbnail(http, user, mxc, -5, 32), 400, "M_INVALID_PARAM")
    expect(
        http.get(
            f"{V1}/thumbnail/{mxc}", params={"width": "big", "height": 3}, headers=user.headers
        ),
        400,
        "M_INVALID_PARAM",
    )
    expect(
        http.get(f"{V1}/thumbnail/{mxc}", params={"width": 3}, headers=user.headers),
        400,
        "M_MISSING_PARAM",
    )
    expect(thumbnail(http, user, mxc, 32, 32, method="zoom"), 400, "M_INVALID_PARAM")


def test_quarantine_and_deletion_through_the_cli(server_factory: ServerFactory) -> None:
    server = server_factory(shared=False)
    with server.client() as http:
        user = register_user(http)
        first = upload(http, user, b"one", "text/plain", "one.txt")
        second = upload(http, user, b"two", "text/plain")
        listing = server.cli("media", "list", "--json", user.user_id).stdout
        assert first.split("/")[1] in listing and "one.txt" in listing
        server.cli("media", "quarantine", first.split("/")[1])
        expect(http.get(f"{V1}/download/{first}", headers=user.headers), 404, "M_NOT_FOUND")
        # The whole mxc:// URI, as copied from a client, names it as well.
        server.cli("media", "quarantine", "--release", f"mxc://{first}")
        assert http.get(f"{V1}/download/{first}", headers=user.headers).content == b"one"
        foreign = server.cli("media", "delete", f"mxc://elsewhere.example/{first}", check=False)
        assert foreign.returncode != 0 and "not media of" in foreign.stderr
        server.cli("media", "delete", second.split("/")[1])
        expect(http.get(f"{V1}/download/{second}", headers=user.headers), 404, "M_NOT_FOUND")
        missing = server.cli("media", "delete", "nope", check=False)
        assert missing.returncode != 0
        # An ID that begins with "-" (older servers made one upload in 64 so) goes after "--".
        dashed = run_cli(
            "media", "delete", "--data-dir", str(server.data_dir), "--", "-nope", check=False
        )
        assert dashed.returncode != 0 and "no media -nope" in dashed.stderr


def test_guests_may_download_but_not_upload(server_factory: ServerFactory) -> None:
    server = server_factory({"registration": {"allow_guests": True}})
    with server.client() as http:
        user = register_user(http)
        mxc = upload(http, user, png(200, 200), "image/png", "p.png")
        body = expect(
            http.post("/_matrix/client/v3/register", params={"kind": "guest"}, json={}), 200
        )
        guest = {"Authorization": f"Bearer {body['access_token']}"}
        assert http.get(f"{V1}/download/{mxc}", headers=guest).status_code == 200
        assert http.get(f"{V1}/download/{mxc}/name.png", headers=guest).status_code == 200
        thumb = http.get(f"{V1}/thumbnail/{mxc}", params={"width": 32, "height": 32}, headers=guest)
        assert thumb.status_code == 200
        expect(
            http.post(f"{V3}/upload", content=b"x", headers=guest), 403, "M_GUEST_ACCESS_FORBIDDEN"
        )


def test_range_requests_for_seeking(http: httpx.Client, user: User) -> None:
    # 10 MB spans three 4 MiB chunks: ranges inside one, across a boundary, at the end.
    data = os.urandom(10_000_000)
    mxc = upload(http, user, data, "video/mp4", "clip.mp4")
    url = f"{V1}/download/{mxc}"
    boundary = 4 * 1024 * 1024
    for header, first, last in [
        ("bytes=0-99", 0, 99),
        (f"bytes={boundary - 10}-{boundary + 9}", boundary - 10, boundary + 9),
        (f"bytes={2 * boundary}-", 2 * boundary, len(data) - 1),
        ("bytes=-10", len(data) - 10, len(data) - 1),
        ("bytes=9999990-20000000", 9_999_990, len(data) - 1),
    ]:
        response = http.get(url, headers={**user.headers, "Range": header})
        assert response.status_code == 206, (header, response.status_code)
        assert response.content == data[first : last + 1], header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
        assert response.headers["content-length"] == str(last - first + 1)
    whole = http.get(url, headers=user.headers)
    assert whole.headers["accept-ranges"] == "bytes" and whole.content == data
    for ignored in ("bytes=0-1,5-6", "lines=1-2", "bytes=5-1", "bytes=x-y"):
        response = http.get(url, headers={**user.headers, "Range": ignored})
        assert response.status_code == 200 and len(response.content) == len(data), ignored
    expect(http.get(url, headers={**user.headers, "Range": "bytes=10000000-"}), 416)
    expect(http.get(url, headers={**user.headers, "Range": "bytes=-0"}), 416)
