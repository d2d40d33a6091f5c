"""URL previews against a real local web site on 127.0.0.2 (the one host the test config
allows), and the SSRF suite: with previews on, the server refuses every private,
loopback, link-local and otherwise non-public target, however it is written, and a
redirect from the allowed host into a private one."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import User, expect, register_user

SITE_HOST = "127.0.0.2"
PREVIEW = "/_matrix/client/v1/media/preview_url"


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (0, 160, 90)).save(buffer, "PNG")
    return buffer.getvalue()


ARTICLE = b"""<!doctype html><html><head>
<meta charset="utf-8">
<title>Ignored title</title>
<meta property="og:title" content="Family picnic &amp; games">
<meta property="og:description" content="  Photos from   Sunday. ">
<meta property="og:image" content="/pictures/picnic.png">
<meta property="og:site_name" content="Our blog">
<meta property="og:type" content="article">
</head><body><p>Text</p></body></html>"""

PLAIN = """<html><head><title>Caf\u00e9 menu</title>
<meta name="description" content="Soups and salads">
<script>var title = "<title>not this</title>";</script>
</head><body><img src="menu.png"></body></html>""".encode("latin-1")


VIDEO_PAGE = b"""<html><head><meta name="description" content="A clip">
<link rel="alternate" type="application/json+oembed" href="/oembed.json?url=video">
</head></html>"""
OEMBED = b"""{"version": "1.0", "type": "video", "title": "Birthday song",
"provider_name": "Home videos", "thumbnail_url": "/menu.png", "html": "<iframe></iframe>"}"""


class Site:
    """A small web site: pages, images, redirects; counts requests per path."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                site.hits[path] = site.hits.get(path, 0) + 1
                port = self.server.server_address[1]
                routes: dict[str, tuple[int, str, bytes]] = {
                    "/article": (200, "text/html", ARTICLE),
                    "/plain": (200, "text/html; charset=iso-8859-1", PLAIN),
                    "/pictures/picnic.png": (200, "image/png", png(1024, 768)),
                    "/menu.png": (200, "image/png", png(300, 200)),
                    "/photo.png": (200, "image/png", png(640, 480)),
                    "/file.bin": (200, "application/octet-stream", b"\x00" * 100),
                    "/huge": (200, "text/html", b"<html>" + b"x" * 50_000),
                    "/video": (200, "text/html", VIDEO_PAGE),
                    "/oembed.json": (200, "application/json", OEMBED),
                    "/broken-image": (
                        200,
                        "text/html",
                        b'<meta property="og:image" content="/nothing">',
                    ),
                }
                if path == "/to-private":
                    self._redirect(f"http://127.0.0.1:{port}/article")
                elif path == "/to-metadata":
                    self._redirect("http://169.254.169.254/latest/meta-data/")
                elif path == "/to-article":
                    self._redirect("/article")
                elif path in routes:
                    status, content_type, body = routes[path]
                    self._answer(status, content_type, body)
                else:
                    self._answer(404, "text/plain", b"not here")

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((SITE_HOST, 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{SITE_HOST}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


def previews_on(site: Site, **extra: Any) -> dict[str, dict[str, Any]]:
    return {
        "url_previews": {
            "enabled": True,
            "allowed_ranges": [f"{SITE_HOST}/32"],
            "allowed_ports": [80, 443, site.port],
            **extra,
        }
    }


@pytest.fixture(scope="module")
def preview_server(server_factory: ServerFactory, site: Site) -> Server:
    return server_factory(previews_on(site))


@pytest.fixture
def alice(preview_server: Server) -> Iterator[tuple[httpx.Client, User]]:
    with preview_server.client() as http:
        yield http, register_user(http)


def preview(http: httpx.Client, user: User, url: str) -> httpx.Response:
    return http.get(PREVIEW, params={"url": url}, headers=user.headers)


def test_previews_are_off_by_default(http: httpx.Client, user: User) -> None:
    expect(preview(http, user, "https://matrix.org/"), 404, "M_UNRECOGNIZED")


def test_opengraph_preview_with_its_image_stored_as_media(
    alice: tuple[httpx.Client, User], site: Site
) -> None:
    http, user = alice
    og = expect(preview(http, user, f"{site.url}/article"), 200)
    assert og["og:title"] == "Family picnic & games"
    assert og["og:description"] == "Photos from Sunday."
    assert og["og:site_name"] == "Our blog"
    assert og["og:type"] == "article"
    assert og["og:image"].startswith("mxc://localhost/")
    assert og["og:image:type"] == "image/png"
    assert (og["og:image:width"], og["og:image:height"]) == (1024, 768)
    mxc = og["og:image"].removeprefix("mxc://")
    image = http.get(f"/_matrix/client/v1/media/download/{mxc}", headers=user.headers)
    assert image.status_code == 200 and len(image.content) == og["matrix:image:size"]
    thumb = http.get(
        f"/_matrix/client/v1/media/thumbnail/{mxc}",
        params={"width": 320, "height": 240},
        headers=user.headers,
    )
    with Image.open(io.BytesIO(thumb.content)) as picture:
        assert picture.size == (320, 240)
    # The deprecated path answers the same (cached) preview.
    again = http.get(
        "/_matrix/media/v3/preview_url", params={"url": f"{site.url}/article"}, headers=user.headers
    )
    assert expect(again, 200) == og


def test_html_fallbacks_without_opengraph(alice: tuple[httpx.Client, User], site: Site) -> None:
    http, user = alice
    og = expect(preview(http, user, f"{site.url}/plain"), 200)
    assert og["og:title"] == "Caf\u00e9 menu"
    assert og["og:description"] == "Soups and salads"
    assert og["og:image"].startswith("mxc://")
    assert (og["og:image:width"], og["og:image:height"]) == (300, 200)


def test_preview_of_an_image_and_of_other_types(
    alice: tuple[httpx.Client, User], site: Site
) -> None:
    http, user = alice
    og = expect(preview(http, user, f"{site.url}/photo.png"), 200)
    assert og["og:title"] == "photo.png"
    assert og["og:image"].startswith("mxc://")
    assert (og["og:image:width"], og["og:image:height"]) == (640, 480)
    assert "og:image" not in expect(preview(http, user, f"{site.url}/file.bin"), 200)
    # An og:image that cannot be fetched leaves a preview without a picture.
    assert "og:image" not in expect(preview(http, user, f"{site.url}/broken-image"), 200)


def test_oembed_fills_what_the_page_lacks(alice: tuple[httpx.Client, User], site: Site) -> None:
    http, user = alice
    og = expect(preview(http, user, f"{site.url}/video"), 200)
    assert og["og:title"] == "Birthday song"
    assert og["og:description"] == "A clip"
    assert og["og:site_name"] == "Home videos"
    assert og["og:image"].startswith("mxc://")
    assert (og["og:image:width"], og["og:image:height"]) == (300, 200)
    assert site.hits["/oembed.json"] == 1


def test_previews_are_cached(alice: tuple[httpx.Client, User], site: Site) -> None:
    http, user = alice
    url = f"{site.url}/to-article?cache=1"
    first = expect(preview(http, user, url), 200)
    hits = site.hits["/to-article"]
    assert expect(preview(http, user, url), 200) == first
    assert site.hits["/to-article"] == hits


def test_upstream_errors(alice: tuple[httpx.Client, User], site: Site) -> None:
    http, user = alice
    expect(preview(http, user, f"{site.url}/missing"), 502, "M_UNKNOWN")
    closed = f"http://{SITE_HOST}:1/"
    expect(preview(http, user, closed), 400, "M_INVALID_PARAM")  # port not allowed


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:{port}/article",
        "http://localhost/",
        "http://localhost:{port}/article",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://10.255.255.254/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://172.31.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://0/",
        "http://100.64.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://127.1/",
        "https://127.0.0.1/",
        "{site}/to-private",
        "{site}/to-metadata",
    ],
)
def test_ssrf_targets_are_refused(
    alice: tuple[httpx.Client, User], site: Site, target: str
) -> None:
    http, user = alice
    url = target.format(port=site.port, site=site.url)
    hits = dict(site.hits)
    response = preview(http, user, url)
    expect(response, 403, "M_FORBIDDEN")
    assert "public" in response.json()["error"]
    # Nothing was fetched from the private side (the site counts every request).
    assert all(site.hits[path] == hits.get(path, 0) for path in site.hits if path == "/article")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/",
        "gopher://127.0.0.1:70/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "not a url",
        "http://",
        "http://user:pass@example.org/",
        "http://example.org:22/",
        "http://[::1",
        "http://exa mple.org/",
    ],
)
def test_malformed_urls_and_other_schemes(alice: tuple[httpx.Client, User], url: str) -> None:
    http, user = alice
    expect(preview(http, user, url), 400, "M_INVALID_PARAM")


def test_missing_url_and_authentication(alice: tuple[httpx.Client, User], site: Site) -> None:
    http, user = alice
    expect(http.get(PREVIEW, headers=user.headers), 400, "M_MISSING_PARAM")
    expect(http.get(PREVIEW, params={"url": f"{site.url}/article"}), 401, "M_MISSING_TOKEN")


def test_ranges_and_limits_from_config(server_factory: ServerFactory, site: Site) -> None:
    server = server_factory(
        previews_on(site, burst=2, per_second=0.001, max_page_bytes=1000, max_image_bytes=1000)
    )
    with server.client() as http:
        user = register_user(http)
        expect(preview(http, user, f"{site.url}/huge"), 502, "M_TOO_LARGE")
        # og:image larger than max_image_bytes: a preview without it.
        assert "og:image" not in expect(preview(http, user, f"{site.url}/article"), 200)
        expect(preview(http, user, f"{site.url}/plain"), 429, "M_LIMIT_EXCEEDED")
        # Cached answers cost nothing.
        expect(preview(http, user, f"{site.url}/article"), 200)
        other = register_user(http)
        expect(preview(http, other, f"{site.url}/plain"), 200)


def test_deny_ranges_win(server_factory: ServerFactory, site: Site) -> None:
    server = server_factory(previews_on(site, denied_ranges=[f"{SITE_HOST}/32"]))
    with server.client() as http:
        user = register_user(http)
        expect(preview(http, user, f"{site.url}/article"), 403, "M_FORBIDDEN")
