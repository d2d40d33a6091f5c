"""Server-rendered pages: plain HTML from dendrite_lite/templates/oauth/, no JavaScript.

Templates are `string.Template` files: every `$name` value is HTML-escaped here, except
names ending in `_html`, which are fragments built here from escaped parts.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template

from dendrite_lite.oauth.strings import text

LANG = "en"


@cache
def _template(name: str) -> Template:
    folder = resources.files("dendrite_lite").joinpath("templates", "oauth")
    return Template(folder.joinpath(name).read_text("utf-8"))


def escape(value: str) -> str:
    return html.escape(value, quote=True)


def render(name: str, title_key: str, server_name: str, **values: str) -> str:
    body = _template(name).substitute(
        {key: value if key.endswith("_html") else escape(value) for key, value in values.items()}
    )
    return _template("layout.html").substitute(
        lang=LANG, title=escape(text(title_key)), server_name=escape(server_name), body=body
    )


def message(
    server_name: str,
    title_key: str,
    message: str,
    *,
    kind: str = "error",
    link: tuple[str, str] | None = None,
) -> str:
    link_html = ""
    if link is not None:
        link_html = f'<p><a class="button" href="{escape(link[0])}">{escape(link[1])}</a></p>'
    return render(
        "message.html", title_key, server_name, kind=kind, message=message, link_html=link_html
    )


def error_box(message: str | None) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
