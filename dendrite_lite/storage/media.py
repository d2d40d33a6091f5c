"""Media repository storage: metadata, blobs (incremental blob I/O), thumbnails, previews.

Content is stored as chunk rows (``media_content``, up to 4 MiB each), one chunk per
write unit, so a large upload never sits whole in memory and never holds the writer
thread for long; it is read back one chunk per read unit with incremental blob I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw

MediaState = str  # 'pending' | 'uploading' | 'complete'


@dataclass(frozen=True)
class Media:
    media_id: str
    user_id: str | None
    state: MediaState
    content_type: str
    upload_name: str | None
    size: int
    sha256: str | None
    created_ts: int
    unused_expires_ts: int | None
    authenticated_only: bool
    quarantined: bool
    width: int | None
    height: int | None


@dataclass(frozen=True)
class Thumbnail:
    width: int
    height: int
    method: str
    animated: bool
    content_type: str
    length: int


_MEDIA_COLUMNS = (
    "media_id, user_id, state, content_type, upload_name, size, sha256, created_ts, "
    "unused_expires_ts, authenticated_only, quarantined, width, height"
)


def _media(row: tuple[object, ...]) -> Media:
    (mid, uid, state, ctype, name, size, sha, created, expires, auth_only, quar, w, h) = row
    return Media(
        media_id=str(mid),
        user_id=None if uid is None else str(uid),
        state=str(state),
        content_type=str(ctype),
        upload_name=None if name is None else str(name),
        size=int(size),  # type: ignore[call-overload]
        sha256=None if sha is None else str(sha),
        created_ts=int(created),  # type: ignore[call-overload]
        unused_expires_ts=None if expires is None else int(expires),  # type: ignore[call-overload]
        authenticated_only=bool(auth_only),
        quarantined=bool(quar),
        width=None if w is None else int(w),  # type: ignore[call-overload]
        height=None if h is None else int(h),  # type: ignore[call-overload]
    )


def get(conn: apsw.Connection, media_id: str) -> Media | None:
    row = conn.execute(
        f"SELECT {_MEDIA_COLUMNS} FROM media WHERE media_id = ?", (media_id,)
    ).fetchone()
    return _media(row) if row else None


def create_pending(
    conn: apsw.Connection,
    media_id: str,
    user_id: str,
    created_ts: int,
    unused_expires_ts: int,
    authenticated_only: bool,
) -> None:
    """A media ID reserved by POST /create, to be filled by PUT /upload before it expires."""
    conn.execute(
        "INSERT INTO media (media_id, user_id, state, created_ts, unused_expires_ts,"
        " authenticated_only) VALUES (?, ?, 'pending', ?, ?, ?)",
        (media_id, user_id, created_ts, unused_expires_ts, int(authenticated_only)),
    )


def count_pending(conn: apsw.Connection, user_id: str, now_ms: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM media WHERE user_id = ? AND state = 'pending'"
        " AND unused_expires_ts > ?",
        (user_id, now_ms),
    ).fetchone()
    return int(row[0]) if row else 0


def begin_upload(
    conn: apsw.Connection,
    media_id: str,
    user_id: str | None,
    size: int,
    content_type: str,
    upload_name: str | None,
    created_ts: int,
    authenticated_only: bool,
) -> None:
    """A new media row in state 'uploading'; `size` is the announced length (0 if none),
    counted against the quota while the upload runs."""
    conn.execute(
        "INSERT INTO media (media_id, user_id, state, content_type, upload_name, size,"
        " created_ts, authenticated_only) VALUES (?, ?, 'uploading', ?, ?, ?, ?, ?)",
        (media_id, user_id, content_type, upload_name, size, created_ts, int(authenticated_only)),
    )


def claim_pending(
    conn: apsw.Connection,
    media_id: str,
    size: int,
    content_type: str,
    upload_name: str | None,
) -> bool:
    """Turn a pending media ID into an upload in progress; False if it was not pending."""
    conn.execute(
        "UPDATE media SET state = 'uploading', content_type = ?, upload_name = ?, size = ?"
        " WHERE media_id = ? AND state = 'pending'",
        (content_type, upload_name, size, media_id),
    )
    return conn.changes() > 0


def write_chunk(conn: apsw.Connection, media_id: str, seq: int, data: bytes | bytearray) -> None:
    conn.execute(
        "INSERT INTO media_content (media_id, seq, data) VALUES (?, ?, ?)",
        (media_id, seq, data),
    )


def chunk_bytes(conn: apsw.Connection, media_id: str) -> int:
    """The chunk size a media item was stored with (every chunk but the last has it)."""
    row = conn.execute(
        "SELECT length(data) FROM media_content WHERE media_id = ? AND seq = 0", (media_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def read_chunk(
    conn: apsw.Connection, media_id: str, seq: int, start: int = 0, length: int = -1
) -> bytes | None:
    """`length` bytes (-1: all) of chunk `seq` from `start`, read through incremental
    blob I/O (a range request reads only what it needs); None past the last chunk."""
    row = conn.execute(
        "SELECT rowid FROM media_content WHERE media_id = ? AND seq = ?", (media_id, seq)
    ).fetchone()
    if row is None:
        return None
    blob = conn.blob_open("main", "media_content", "data", int(row[0]), False)
    try:
        blob.seek(start)
        return bytes(blob.read(length))
    finally:
        blob.close()


def read_all(conn: apsw.Connection, media_id: str) -> bytes | None:
    """Whole content; only for media small enough to thumbnail."""
    rows = conn.execute(
        "SELECT data FROM media_content WHERE media_id = ? ORDER BY seq", (media_id,)
    ).fetchall()
    return b"".join(bytes(row[0]) for row in rows)  # type: ignore[arg-type]


def finish_upload(conn: apsw.Connection, media_id: str, sha256: str, size: int) -> None:
    conn.execute(
        "UPDATE media SET state = 'complete', sha256 = ?, size = ?, unused_expires_ts = NULL"
        " WHERE media_id = ? AND state = 'uploading'",
        (sha256, size, media_id),
    )


def set_dimensions(conn: apsw.Connection, media_id: str, width: int, height: int) -> None:
    conn.execute(
        "UPDATE media SET width = ?, height = ? WHERE media_id = ?", (width, height, media_id)
    )


def abort_upload(conn: apsw.Connection, media_id: str, *, back_to_pending: bool) -> None:
    """Remove a failed upload: its content always; its row too unless /create reserved it."""
    conn.execute("DELETE FROM media_content WHERE media_id = ?", (media_id,))
    if back_to_pending:
        conn.execute(
            "UPDATE media SET state = 'pending', size = 0 WHERE media_id = ?"
            " AND state = 'uploading'",
            (media_id,),
        )
    else:
        conn.execute("DELETE FROM media WHERE media_id = ? AND state = 'uploading'", (media_id,))


def recover_interrupted(conn: apsw.Connection) -> int:
    """At start: uploads cut off by a crash or restart are removed (reservations kept)."""
    conn.execute(
        "DELETE FROM media_content WHERE media_id IN"
        " (SELECT media_id FROM media WHERE state = 'uploading')"
    )
    conn.execute(
        "UPDATE media SET state = 'pending', size = 0"
        " WHERE state = 'uploading' AND unused_expires_ts IS NOT NULL"
    )
    conn.execute("DELETE FROM media WHERE state = 'uploading'")
    return conn.changes()


def delete_expired_pending(conn: apsw.Connection, now_ms: int) -> int:
    conn.execute("DELETE FROM media WHERE state = 'pending' AND unused_expires_ts <= ?", (now_ms,))
    return conn.changes()


def usage(conn: apsw.Connection, user_id: str) -> int:
    """Bytes a user's media take (complete and in progress)."""
    row = conn.execute(
        "SELECT coalesce(sum(size), 0) FROM media WHERE user_id = ?", (user_id,)
    ).fetchone()
    return int(row[0]) if row else 0


# -- thumbnails ----------------------------------------------------------------------


def thumbnails(conn: apsw.Connection, media_id: str) -> list[Thumbnail]:
    rows = conn.execute(
        "SELECT width, height, method, animated, content_type, length(data)"
        " FROM media_thumbnails WHERE media_id = ?",
        (media_id,),
    ).fetchall()
    return [
        Thumbnail(int(w), int(h), str(m), bool(a), str(c), int(n))  # type: ignore[arg-type]
        for w, h, m, a, c, n in rows
    ]


def thumbnail_data(
    conn: apsw.Connection, media_id: str, width: int, height: int, method: str, animated: bool
) -> bytes | None:
    row = conn.execute(
        "SELECT data FROM media_thumbnails WHERE media_id = ? AND width = ? AND height = ?"
        " AND method = ? AND animated = ?",
        (media_id, width, height, method, int(animated)),
    ).fetchone()
    return None if row is None else bytes(row[0])


def put_thumbnail(
    conn: apsw.Connection,
    media_id: str,
    thumb: Thumbnail,
    data: bytes,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO media_thumbnails"
        " (media_id, width, height, method, animated, content_type, data)"
        " SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM media WHERE media_id = ?)",
        (
            media_id,
            thumb.width,
            thumb.height,
            thumb.method,
            int(thumb.animated),
            thumb.content_type,
            data,
            media_id,
        ),
    )


# -- URL previews --------------------------------------------------------------------


def cached_preview(conn: apsw.Connection, url: str, now_ms: int) -> bytes | None:
    row = conn.execute(
        "SELECT og FROM url_previews WHERE url = ? AND expires_ts > ?", (url, now_ms)
    ).fetchone()
    return None if row is None else bytes(row[0])


def cache_preview(
    conn: apsw.Connection, url: str, og: bytes, fetched_ts: int, expires_ts: int
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO url_previews (url, fetched_ts, expires_ts, og) VALUES (?, ?, ?, ?)",
        (url, fetched_ts, expires_ts, og),
    )
    conn.execute("DELETE FROM url_previews WHERE expires_ts <= ?", (fetched_ts,))


# -- administration ------------------------------------------------------------------


def list_by_user(conn: apsw.Connection, user_id: str) -> list[Media]:
    rows = conn.execute(
        f"SELECT {_MEDIA_COLUMNS} FROM media WHERE user_id = ? ORDER BY created_ts",
        (user_id,),
    ).fetchall()
    return [_media(row) for row in rows]


def set_quarantined(conn: apsw.Connection, media_id: str, quarantined: bool) -> bool:
    conn.execute(
        "UPDATE media SET quarantined = ? WHERE media_id = ?", (int(quarantined), media_id)
    )
    return conn.changes() > 0


def delete(conn: apsw.Connection, media_id: str) -> bool:
    conn.execute("DELETE FROM media WHERE media_id = ?", (media_id,))
    return conn.changes() > 0
