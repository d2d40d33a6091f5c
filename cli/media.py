"""`dendrite-lite media ...`: who uploaded what, quarantine, deletion.

The same service functions the admin API will use (dendrite_lite/media/repository.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dendrite_lite.media.repository import MediaRepository
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.media import Media

from .common import DEFAULT_DATA_DIR, DataDir, console, fail, load_config, with_database

app = typer.Typer(help="Inspect and moderate uploaded media.", no_args_is_help=True)


_MEDIA_ID_HELP = (
    "The media ID (the last part of mxc://) or the whole mxc:// URI."
    " An ID that begins with '-' goes after '--'."
)


def _repository(data_dir: Path, db: Database) -> MediaRepository:
    config = load_config(data_dir)
    return MediaRepository(db, config.media, config.server_name)


def _local_media_id(text: str, server_name: str) -> str:
    """The media ID in a bare ID or in an mxc:// URI of ours, as copied from a client."""
    if not text.startswith("mxc://"):
        return text
    origin, _, media_id = text.removeprefix("mxc://").partition("/")
    if origin != server_name or not media_id or "/" in media_id:
        raise fail(f"{text} is not media of {server_name}")
    return media_id


@app.command("list")
def list_media(
    user_id: Annotated[str, typer.Argument(help="e.g. @alice:example.org")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for scripts.")] = False,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """List a user's uploads.

    Example: dendrite-lite media list @alice:example.org
    """
    config = load_config(data_dir)

    async def work(db: Database) -> list[Media]:
        return await _repository(data_dir, db).list_user_media(user_id)

    found = with_database(config, work)
    if as_json:
        console.print_json(json.dumps([m.__dict__ for m in found]))
        return
    table = Table("media ID", "type", "name", "bytes", "uploaded", "state")
    for media in found:
        when = datetime.fromtimestamp(media.created_ts / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        state = "quarantined" if media.quarantined else media.state
        table.add_row(
            media.media_id,
            media.content_type,
            media.upload_name or "",
            str(media.size),
            when,
            state,
        )
    console.print(table)


@app.command("quarantine")
def quarantine(
    media: Annotated[str, typer.Argument(metavar="MEDIA", help=_MEDIA_ID_HELP)],
    release: Annotated[bool, typer.Option("--release", help="Serve it again.")] = False,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Stop serving a media item (downloads answer M_NOT_FOUND), or serve it again.

    Example: dendrite-lite media quarantine AbCdEf123 (or mxc://example.org/AbCdEf123)
    """
    config = load_config(data_dir)
    media_id = _local_media_id(media, config.server_name)

    async def work(db: Database) -> bool:
        return await _repository(data_dir, db).set_quarantined(media_id, not release)

    if not with_database(config, work):
        raise fail(f"no media {media_id}")
    console.print(f"{media_id} {'released' if release else 'quarantined'}")


@app.command("delete")
def delete(
    media: Annotated[str, typer.Argument(metavar="MEDIA", help=_MEDIA_ID_HELP)],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Delete a media item, its content and its thumbnails.

    Example: dendrite-lite media delete AbCdEf123
    """
    config = load_config(data_dir)
    media_id = _local_media_id(media, config.server_name)

    async def work(db: Database) -> bool:
        return await _repository(data_dir, db).delete(media_id)

    if not with_database(config, work):
        raise fail(f"no media {media_id}")
    console.print(f"{media_id} deleted")
