"""OpenGraph and HTML fallback parsing."""

from __future__ import annotations

from dendrite_lite.media import opengraph

URL = "https://example.org/blog/post"


def test_opengraph_wins_and_image_becomes_absolute() -> None:
    html = b"""<html><head><title>Plain</title>
    <meta property="og:title" content="OG title"><meta name="twitter:title" content="T">
    <meta property="og:image" content="../img/a.png"><meta property="OG:Type" content="video">
    </head></html>"""
    og = opengraph.parse(html, "text/html", URL)
    assert og == {
        "og:title": "OG title",
        "og:image": "https://example.org/img/a.png",
        "og:type": "video",
        "og:url": URL,
    }


def test_fallbacks_title_description_first_image_icon() -> None:
    html = b"""<title>  Hello
      world </title><meta name="description" content="About"><style>title{}</style>
    <link rel="shortcut icon" href="/favicon.ico"><body><img alt="x"><img src="/first.jpg">"""
    og = opengraph.parse(html, "text/html", URL)
    assert og["og:title"] == "Hello world"
    assert og["og:description"] == "About"
    assert og["og:image"] == "https://example.org/first.jpg"
    icon_only = opengraph.parse(b'<link rel="icon" href="i.png">', "text/html", URL)
    assert icon_only["og:image"] == "https://example.org/blog/i.png"


def test_charsets() -> None:
    latin = "<title>Caf\u00e9</title>".encode("latin-1")
    assert opengraph.parse(latin, "text/html; charset=ISO-8859-1", URL)["og:title"] == "Caf\u00e9"
    meta = b'<meta charset="windows-1252"><title>\xe9t\xe9</title>'
    assert opengraph.parse(meta, "text/html", URL)["og:title"] == "\u00e9t\u00e9"
    unknown = "<title>\u00e9</title>".encode()
    assert opengraph.parse(unknown, "text/html; charset=nope", URL)["og:title"] == "\u00e9"


def test_script_text_is_not_a_title_and_values_are_capped() -> None:
    html = b"<script>document.title='<title>x</title>'</script><title>Real</title>"
    assert opengraph.parse(html, "text/html", URL)["og:title"] == "Real"
    long = b'<meta property="og:description" content="' + b"y" * 5000 + b'">'
    assert len(opengraph.parse(long, "text/html", URL)["og:description"]) == 1000


def test_garbage_gives_just_the_url() -> None:
    assert opengraph.parse(b"\x00\xff<<>>", "application/xhtml+xml", URL) == {"og:url": URL}


def test_oembed_discovery_and_filling() -> None:
    html = b"""<title>Page</title><link rel="alternate" type="application/json+oembed"
    href="/oembed?url=x">"""
    og, oembed = opengraph.parse_page(html, "text/html", URL)
    assert oembed == "https://example.org/oembed?url=x"
    document = {
        "type": "video",
        "title": "Ignored: the page has a title",
        "provider_name": "Tube",
        "thumbnail_url": "/thumb.jpg",
    }
    filled = opengraph.from_oembed(document, og, oembed)
    assert filled["og:title"] == "Page"
    assert filled["og:site_name"] == "Tube"
    assert filled["og:image"] == "https://example.org/thumb.jpg"
    photo = opengraph.from_oembed({"type": "photo", "url": "https://cdn.example/p.png"}, {}, oembed)
    assert photo == {"og:image": "https://cdn.example/p.png"}
    assert opengraph.from_oembed(["not", "a", "dict"], og, oembed) == og
    assert opengraph.parse_page(b"<title>x</title>", "text/html", URL)[1] is None
