"""`dendrite-lite email ...`: check the [email] (SMTP) settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from dendrite_lite.errors import MatrixError
from dendrite_lite.threepid.addresses import canonical_email
from dendrite_lite.threepid.mailer import Mailer, SendError
from dendrite_lite.threepid.templates import EmailTemplates, TemplateError

from .common import DEFAULT_DATA_DIR, EXIT_CONFIG, DataDir, console, fail, load_config

app = typer.Typer(help="Email (SMTP) settings.", no_args_is_help=True)


@app.command("test")
def send_test(
    address: Annotated[str, typer.Argument(help="Where to send the test mail")],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Send a test mail now with the [email] settings and say whether it worked.

    Example: dendrite-lite email test me@example.org
    """
    config = load_config(data_dir)
    email = config.email
    if not email.enabled:
        raise fail("email is off: set email.smtp_host and email.from in config.toml", EXIT_CONFIG)
    try:
        recipient = canonical_email(address)
        mail = EmailTemplates(config.data_dir).render("test", server_name=config.server_name)
    except MatrixError as exc:
        raise fail(f"{address}: {exc.message}") from None
    except TemplateError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    where = f"{email.smtp_host}:{email.smtp_port} ({email.smtp_tls})"
    try:
        asyncio.run(Mailer(email).send(recipient, mail))
    except SendError as exc:
        raise fail(f"sending through {where} failed: {exc}") from None
    console.print(f"[green]Sent[/] a test mail to {recipient} through {where}")
