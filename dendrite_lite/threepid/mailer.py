"""SMTP delivery with aiosmtplib: one connection per mail, settings from [email].

smtp_tls: "starttls" upgrades a plain connection (port 587), "implicit" speaks TLS from
the first byte (port 465), "none" sends in the clear (a relay on the same machine).
Certificates are always verified; smtp_ca_file adds a CA (a self-signed relay).
"""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

from dendrite_lite.config import EmailConfig
from dendrite_lite.threepid.templates import RenderedEmail


class SendError(Exception):
    """The SMTP server could not be reached or refused the mail; the text says why."""


def build_message(config: EmailConfig, recipient: str, mail: RenderedEmail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.from_address
    message["To"] = recipient
    message["Subject"] = mail.subject
    message["Date"] = email.utils.formatdate(localtime=False)
    domain = email.utils.parseaddr(config.from_address)[1].rpartition("@")[2] or None
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


class Mailer:
    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    async def send(self, recipient: str, mail: RenderedEmail) -> None:
        """Deliver one mail or raise SendError."""
        # Imported on the first mail: aiosmtplib costs ~7 MiB of idle memory, and most
        # servers send mail rarely or never.
        import aiosmtplib

        config = self.config
        message = build_message(config, recipient, mail)
        try:
            await aiosmtplib.send(
                message,
                hostname=config.smtp_host,
                port=config.smtp_port,
                username=config.smtp_user or None,
                password=config.smtp_password or None,
                use_tls=config.smtp_tls == "implicit",
                start_tls=config.smtp_tls == "starttls",
                cert_bundle=config.smtp_ca_file or None,
                timeout=config.timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}".strip()) from None
