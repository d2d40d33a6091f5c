"""Email templates: plain text and HTML, from the package or overridden in the data dir.

Each mail is two files, ``<name>.txt`` and ``<name>.html``, in
``dendrite_lite/templates/email/``; the same names under ``<data dir>/templates/email/``
win (an operator's own wording or language). The text file's first line is
``Subject: ...``. Placeholders are ``$server_name``, ``$address``, ``$link`` and
``$lifetime`` (string.Template: no code runs in a template); values are HTML-escaped in
the HTML part. Templates are read once, at start.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from dendrite_lite.config import ConfigError

NAMES = ("register", "add", "password", "in_use", "no_account", "test")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Pair:
    subject: Template
    text: Template
    html: Template


class TemplateError(ConfigError):
    """A template file is missing or malformed (named in the message): an operator's
    mistake, reported at start-up in one line like any other configuration error."""


class EmailTemplates:
    def __init__(self, data_dir: str | Path | None) -> None:
        self._pairs = {name: _load(name, data_dir) for name in NAMES}

    def render(self, name: str, **values: str) -> RenderedEmail:
        pair = self._pairs[name]
        escaped = {key: html.escape(value) for key, value in values.items()}
        # A subject is one header line, whatever a value contains.
        subject = " ".join(pair.subject.safe_substitute(values).split())
        return RenderedEmail(
            subject, pair.text.safe_substitute(values), pair.html.safe_substitute(escaped)
        )


def _read(name: str, data_dir: str | Path | None) -> str:
    if data_dir:
        override = Path(data_dir) / "templates" / "email" / name
        if override.is_file():
            try:
                return override.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise TemplateError(f"templates/email/{name}: cannot be read: {exc}") from None
    packaged = resources.files("dendrite_lite").joinpath("templates", "email", name)
    return packaged.read_text("utf-8")


def _load(name: str, data_dir: str | Path | None) -> _Pair:
    text = _read(f"{name}.txt", data_dir)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise TemplateError(f"templates/email/{name}.txt: the first line must be 'Subject: ...'")
    return _Pair(
        Template(first.removeprefix("Subject:").strip()),
        Template(body.lstrip("\n")),
        Template(_read(f"{name}.html", data_dir)),
    )
