"""OpenGraph metadata from an HTML page, with the plain-HTML fallbacks (``<title>``,
``<meta name="description">``, Twitter cards, the first image) for pages without it.

https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1mediapreview_url
and https://ogp.me/. Pure: bytes in, a dict of ``og:*`` strings out.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin

MAX_VALUE_CHARS = 1000
_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
# Tags whose text is never a title or description.
_SKIP = frozenset({"script", "style", "noscript", "template", "svg"})


class _MetaParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}  # property/name (lower-cased) -> first content
        self.title: str | None = None
        self.first_image: str | None = None
        self.icon: str | None = None
        self.oembed: str | None = None
        self._in_title = False
        self._skip_depth = 0
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        if tag in _SKIP:
            self._skip_depth += 1
        elif tag == "meta":
            key = (values.get("property") or values.get("name") or "").strip().lower()
            content = values.get("content")
            if key and content is not None and key not in self.meta:
                self.meta[key] = content
        elif tag == "title" and self.title is None:
            self._in_title = True
        elif tag == "img" and self.first_image is None and values.get("src"):
            self.first_image = values["src"]
        elif tag == "link":
            rel = values.get("rel", "").lower().split()
            if self.icon is None and "icon" in rel:
                self.icon = values.get("href") or None
            if (
                self.oembed is None
                and "alternate" in rel
                and values.get("type", "").lower() == "application/json+oembed"
            ):
                self.oembed = values.get("href") or None

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self._skip_depth:
            self._skip_depth -= 1
        elif tag == "title" and self._in_title:
            self._in_title = False
            self.title = "".join(self._title_parts)

    def handle_data(self, data: str) -> None:
        if self._in_title and not self._skip_depth:
            self._title_parts.append(data)


def decode_html(body: bytes, content_type: str) -> str:
    """The page as text: the charset from the header, else a <meta charset>, else UTF-8."""
    charset = None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    if charset is None:
        match = _CHARSET.search(body[:4096])
        charset = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = _SPACES.sub(" ", value).strip()
    return value[:MAX_VALUE_CHARS] or None


def parse(body: bytes, content_type: str, page_url: str) -> dict[str, str]:
    """``og:title``, ``og:description``, ``og:image`` (absolute URL), ``og:site_name``
    and the other ``og:`` keys the page declares."""
    return parse_page(body, content_type, page_url)[0]


def parse_page(body: bytes, content_type: str, page_url: str) -> tuple[dict[str, str], str | None]:
    """`parse`, plus the page's oEmbed discovery link (absolute) if it has one."""
    parser = _MetaParser()
    try:
        parser.feed(decode_html(body, content_type))
        parser.close()
    except AssertionError:  # html.parser gives up on some broken markup
        pass
    meta = parser.meta
    og: dict[str, str] = {}
    for key, value in meta.items():
        cleaned = _clean(value)
        if key.startswith("og:") and cleaned is not None:
            og[key] = cleaned
    fallbacks = {
        "og:title": [meta.get("twitter:title"), parser.title],
        "og:description": [meta.get("twitter:description"), meta.get("description")],
        "og:image": [meta.get("twitter:image"), parser.first_image, parser.icon],
    }
    for key, candidates in fallbacks.items():
        if key in og:
            continue
        for candidate in candidates:
            cleaned = _clean(candidate)
            if cleaned is not None:
                og[key] = cleaned
                break
    if "og:image" in og:
        og["og:image"] = urljoin(page_url, og["og:image"])
    og.setdefault("og:url", page_url)
    oembed = urljoin(page_url, parser.oembed) if parser.oembed else None
    return og, oembed


def from_oembed(document: object, og: dict[str, str], oembed_url: str) -> dict[str, str]:
    """og keys the page lacked, filled from an oEmbed response (https://oembed.com/)."""
    if not isinstance(document, dict):
        return og
    filled = dict(og)
    image = document.get("url") if document.get("type") == "photo" else None
    fields = {
        "og:title": document.get("title"),
        "og:site_name": document.get("provider_name"),
        "og:image": image or document.get("thumbnail_url"),
    }
    for key, value in fields.items():
        cleaned = _clean(value) if isinstance(value, str) else None
        if cleaned is not None and key not in filled:
            filled[key] = urljoin(oembed_url, cleaned) if key == "og:image" else cleaned
    return filled
