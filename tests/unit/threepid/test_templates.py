"""Email templates: the packaged ones, overrides from the data dir, escaping."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.config import EmailConfig
from dendrite_lite.threepid.mailer import build_message
from dendrite_lite.threepid.sessions import _duration
from dendrite_lite.threepid.templates import NAMES, EmailTemplates, TemplateError

VALUES = {
    "server_name": "example.org",
    "address": "a@example.org",
    "link": "https://example.org/_dendrite/client/email/submit_token?sid=1&token=2",
    "lifetime": "1 hour",
}


@pytest.mark.parametrize("name", NAMES)
def test_every_packaged_template_renders_both_parts(name: str) -> None:
    mail = EmailTemplates(None).render(name, **VALUES)
    assert "example.org" in mail.subject and "\n" not in mail.subject
    assert "$" not in mail.text and "$" not in mail.html
    assert mail.html.lstrip().startswith("<!DOCTYPE html>")
    if name in ("register", "add", "password"):
        assert VALUES["link"] in mail.text
        assert VALUES["link"].replace("&", "&amp;") in mail.html
        assert "1 hour" in mail.text


def test_values_are_escaped_in_html_and_subjects_stay_one_line() -> None:
    mail = EmailTemplates(None).render(
        "register", **{**VALUES, "server_name": "<b>evil</b>\r\nBcc: x@example.org"}
    )
    assert "<b>evil</b>" not in mail.html and "&lt;b&gt;evil&lt;/b&gt;" in mail.html
    assert "\r" not in mail.subject and "\n" not in mail.subject


def test_the_data_dir_overrides_a_template(tmp_path: Path) -> None:
    folder = tmp_path / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "test.txt").write_text("Subject: Hallo von $server_name\n\nEin Test.\n")
    templates = EmailTemplates(tmp_path)
    mail = templates.render("test", server_name="example.org")
    assert mail.subject == "Hallo von example.org"
    assert mail.text == "Ein Test.\n"
    assert "test mail" in templates.render("test", server_name="x").html  # packaged HTML
    assert templates.render("register", **VALUES).subject.startswith("Confirm")


def test_an_override_without_a_subject_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "password.txt").write_text("Reset it.\n")
    with pytest.raises(TemplateError, match=r"password\.txt"):
        EmailTemplates(tmp_path)


def test_build_message_has_both_parts_and_headers() -> None:
    config = EmailConfig(smtp_host="smtp.example.org", from_address="Home <hs@example.org>")
    message = build_message(config, "a@example.org", EmailTemplates(None).render("test", **VALUES))
    assert message["From"] == "Home <hs@example.org>"
    assert message["To"] == "a@example.org"
    assert message["Message-ID"].endswith("@example.org>")
    assert message.get_body(("plain",)) is not None
    assert message.get_body(("html",)) is not None


def test_durations_read_naturally() -> None:
    assert _duration(3_600_000) == "1 hour"
    assert _duration(7_200_000) == "2 hours"
    assert _duration(90_000) == "1 minute"
    assert _duration(1_000) == "1 minute"
    assert _duration(30 * 60_000) == "30 minutes"
