-- Media repository: https://spec.matrix.org/latest/client-server-api/#content-repository
-- Blobs live in the same file as everything else (one online backup holds the whole
-- server), apart from their metadata so that listing media never pages blobs in.

-- One row per media ID. state: 'pending' (created by /create, no content yet),
-- 'uploading' (content being streamed in; never served), 'complete'.
CREATE TABLE media (
    media_id        TEXT PRIMARY KEY,          -- [A-Za-z0-9_-]
    user_id         TEXT,                      -- uploader; NULL: the server (URL previews)
    state           TEXT NOT NULL CHECK (state IN ('pending', 'uploading', 'complete')),
    content_type    TEXT NOT NULL DEFAULT 'application/octet-stream',
    upload_name     TEXT,
    size            INTEGER NOT NULL DEFAULT 0,
    sha256          TEXT,                      -- hex, of the complete content
    created_ts      INTEGER NOT NULL,
    unused_expires_ts INTEGER,                 -- pending media: when the reservation lapses
    -- Uploaded while the unauthenticated endpoints were frozen: served only through
    -- the authenticated /_matrix/client/v1/media endpoints (spec 1.11, MSC3916).
    authenticated_only INTEGER NOT NULL DEFAULT 1,
    quarantined     INTEGER NOT NULL DEFAULT 0,
    -- Width and height of images, once known (thumbnail choice, previews).
    width           INTEGER,
    height          INTEGER
) STRICT;
CREATE INDEX media_by_user ON media (user_id, created_ts);
CREATE INDEX media_pending ON media (state, unused_expires_ts) WHERE state != 'complete';

-- The content in chunks of up to 4 MiB, in order. One blob preallocated with zeroblob()
-- would be written twice (zeros, then data): chunk rows measured twice as fast.
CREATE TABLE media_content (
    media_id TEXT NOT NULL REFERENCES media (media_id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (media_id, seq)
) STRICT;

-- Thumbnails: the spec's recommended sizes made at upload, others made on request.
CREATE TABLE media_thumbnails (
    media_id     TEXT NOT NULL REFERENCES media (media_id) ON DELETE CASCADE,
    width        INTEGER NOT NULL,             -- requested box
    height       INTEGER NOT NULL,
    method       TEXT NOT NULL CHECK (method IN ('crop', 'scale')),
    animated     INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (media_id, width, height, method, animated)
) STRICT;

-- URL previews, cached by URL for a while.
CREATE TABLE url_previews (
    url        TEXT PRIMARY KEY,
    fetched_ts INTEGER NOT NULL,
    expires_ts INTEGER NOT NULL,
    og         BLOB NOT NULL                   -- the response JSON
) STRICT;
