-- dendrite-lite: the whole current schema. A new database runs this file as it is;
-- an older one is brought here by the forward migrations in
-- dendrite_lite/storage/migrations.py. PRAGMA user_version is the schema version.
-- STRICT tables: SQLite checks every column's type, as a second line behind msgspec.

-- One global, monotonically increasing stream position shared by every persisted
-- stream (timeline, receipts, account data, to-device, device lists...).
CREATE TABLE stream_position (
    id       INTEGER PRIMARY KEY CHECK (id = 0),
    position INTEGER NOT NULL
) STRICT;
INSERT INTO stream_position (id, position) VALUES (0, 0);

-- The server's ed25519 signing keys (federation, event signatures).
CREATE TABLE server_signing_keys (
    key_id     TEXT PRIMARY KEY,          -- "ed25519:<version>"
    seed       BLOB NOT NULL,             -- 32-byte ed25519 seed
    created_ts INTEGER NOT NULL,
    expired_ts INTEGER                    -- NULL while the key is in use
) STRICT;

-- Local accounts.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,       -- @localpart:server_name
    password_hash TEXT,                   -- argon2id; NULL: no password login
    created_ts    INTEGER NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    is_guest      INTEGER NOT NULL DEFAULT 0,
    deactivated   INTEGER NOT NULL DEFAULT 0,
    locked        INTEGER NOT NULL DEFAULT 0,
    suspended     INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Profile fields (displayname, avatar_url and custom fields of MSC4133), one row each;
-- value is the field's JSON.
CREATE TABLE profile_fields (
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    field   TEXT NOT NULL,
    value   BLOB NOT NULL,
    PRIMARY KEY (user_id, field)
) STRICT, WITHOUT ROWID;

CREATE TABLE devices (
    user_id             TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    device_id           TEXT NOT NULL,
    display_name        TEXT,
    created_ts          INTEGER NOT NULL,
    last_seen_ts        INTEGER,
    last_seen_ip        TEXT,
    last_seen_user_agent TEXT,
    PRIMARY KEY (user_id, device_id)
) STRICT;

-- Tokens are random; only their SHA-256 is stored.
CREATE TABLE refresh_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    expires_ts  INTEGER,                  -- NULL: no expiry
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT;

CREATE TABLE access_tokens (
    token_hash  BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    expires_ts  INTEGER,                  -- NULL: does not expire
    refresh_token_id INTEGER REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    -- The refresh token this token's pair replaced: revoked when this pair is first used
    -- (the spec keeps the old one valid until then, so a lost response can be retried).
    replaces_refresh_id INTEGER,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

-- Account data; room_id '' is global account data.
CREATE TABLE account_data (
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    BLOB NOT NULL,             -- the JSON object as sent
    stream_pos INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
) STRICT, WITHOUT ROWID;
CREATE INDEX account_data_stream ON account_data (user_id, stream_pos);

CREATE TABLE registration_tokens (
    token        TEXT PRIMARY KEY,
    uses_allowed INTEGER,                 -- NULL: unlimited
    completed    INTEGER NOT NULL DEFAULT 0,
    expiry_ts    INTEGER,                 -- NULL: never expires
    created_ts   INTEGER NOT NULL
) STRICT;

-- User-interactive auth sessions.
CREATE TABLE uia_sessions (
    session_id  TEXT PRIMARY KEY,
    created_ts  INTEGER NOT NULL,
    method      TEXT NOT NULL,
    uri         TEXT NOT NULL,
    user_id     TEXT,                     -- who is authenticating, once known
    completed   TEXT NOT NULL DEFAULT '[]', -- JSON list of completed stage types
    data        TEXT NOT NULL DEFAULT '{}'  -- JSON: stage results (e.g. registration token)
) STRICT;

-- ---------------------------------------------------------------------------------
-- Rooms and the event graph.

CREATE TABLE rooms (
    room_id        TEXT PRIMARY KEY,
    room_version   TEXT NOT NULL,
    creator        TEXT NOT NULL,
    created_ts     INTEGER NOT NULL,
    -- The room's current state snapshot (see state_groups).
    state_group    INTEGER,
    -- Published in the public room directory.
    is_public      INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Every event, stored once. `pdu` is the canonical JSON of the signed PDU (what
-- federation sends); `client` is the client-format JSON without `unsigned` (what clients
-- get, with `unsigned` spliced in at serve time, so serving never re-encodes content).
CREATE TABLE events (
    event_nid        INTEGER PRIMARY KEY,
    event_id         TEXT NOT NULL UNIQUE,
    room_id          TEXT NOT NULL REFERENCES rooms (room_id),
    type             TEXT NOT NULL,
    state_key        TEXT,                 -- NULL: not a state event
    sender           TEXT NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    depth            INTEGER NOT NULL,
    stream_pos       INTEGER NOT NULL UNIQUE, -- position on the global stream
    state_before     INTEGER,              -- state group before the event
    state_after      INTEGER,              -- state group after it (= before for non-state)
    pdu              BLOB NOT NULL,
    client           BLOB NOT NULL,
    unsigned         BLOB NOT NULL,        -- the fixed part of `unsigned` (prev_content...)
    membership       TEXT,                 -- content.membership of m.room.member events
    relates_to       TEXT,                 -- m.relates_to.event_id
    rel_type         TEXT,                 -- m.relates_to.rel_type
    redacted_by      TEXT,                 -- event ID of the redaction that pruned it
    txn_id           TEXT,                 -- client transaction ID, for the sending device
    device_id        TEXT
) STRICT;
CREATE INDEX events_room_stream ON events (room_id, stream_pos);
CREATE INDEX events_relations ON events (relates_to, rel_type) WHERE relates_to IS NOT NULL;
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);

-- Idempotent sends: (user, device, txn_id) -> event.
CREATE TABLE event_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
) STRICT, WITHOUT ROWID;

-- The events with no children yet: the next local event's prev_events.
CREATE TABLE forward_extremities (
    room_id  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
) STRICT, WITHOUT ROWID;

-- Room state history as delta-compressed snapshots: a group is its parent plus the
-- entries it lists (an entry with event_nid NULL removes a key). Chains are capped,
-- so "state at event X" reads a bounded number of groups.
CREATE TABLE state_groups (
    group_nid   INTEGER PRIMARY KEY,
    room_id     TEXT NOT NULL,
    parent_nid  INTEGER REFERENCES state_groups (group_nid),
    chain_len   INTEGER NOT NULL           -- 0: a full snapshot
) STRICT;
CREATE TABLE state_group_entries (
    group_nid  INTEGER NOT NULL REFERENCES state_groups (group_nid),
    type       TEXT NOT NULL,
    state_key  TEXT NOT NULL,
    event_nid  INTEGER,
    PRIMARY KEY (group_nid, type, state_key)
) STRICT, WITHOUT ROWID;

-- The state of each room now.
CREATE TABLE current_state (
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    state_key  TEXT NOT NULL,
    event_nid  INTEGER NOT NULL,
    membership TEXT,                       -- for m.room.member
    PRIMARY KEY (room_id, type, state_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX current_state_members ON current_state (room_id, membership)
    WHERE membership IS NOT NULL;

-- Each user's rooms (local and remote users): the backbone of sync and sliding sync.
-- bump_stamp is the stream position of the last event that moves the room up a list.
CREATE TABLE user_rooms (
    user_id     TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    membership  TEXT NOT NULL,
    event_nid   INTEGER NOT NULL,          -- the membership event
    stream_pos  INTEGER NOT NULL,          -- when the membership last changed
    bump_stamp  INTEGER NOT NULL,
    forgotten   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, room_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX user_rooms_recency ON user_rooms (user_id, bump_stamp DESC);
CREATE INDEX user_rooms_room ON user_rooms (room_id, membership);

CREATE TABLE room_aliases (
    alias      TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    creator    TEXT NOT NULL,
    created_ts INTEGER NOT NULL
) STRICT;
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- Reports of events and rooms, for admins.
CREATE TABLE reports (
    report_id   INTEGER PRIMARY KEY,
    room_id     TEXT NOT NULL,
    event_id    TEXT,                      -- NULL: the room itself is reported
    reporter    TEXT NOT NULL,
    reason      TEXT,
    score       INTEGER,
    received_ts INTEGER NOT NULL
) STRICT;

-- Filters uploaded by clients (POST /user/{userId}/filter); ids are per user.
CREATE TABLE user_filters (
    user_id   TEXT NOT NULL,
    filter_id INTEGER NOT NULL,
    filter    BLOB NOT NULL,
    PRIMARY KEY (user_id, filter_id)
) STRICT, WITHOUT ROWID;

-- Read receipts, one per (room, user, type, thread); private ones (m.read.private)
-- only ever go to their owner.
CREATE TABLE receipts (
    room_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    thread_id    TEXT NOT NULL,            -- '' for an unthreaded receipt
    event_id     TEXT NOT NULL,
    ts           INTEGER NOT NULL,
    stream_pos   INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX receipts_stream ON receipts (room_id, stream_pos);

-- To-device messages waiting for a device; deleted once the device's sync acknowledges
-- them (syncs with a later `since`).
CREATE TABLE to_device_inbox (
    stream_pos INTEGER NOT NULL,
    seq        INTEGER NOT NULL,           -- order among the messages of one position
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    sender     TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    BLOB NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_pos, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE to_device_txns (
    sender     TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (sender, device_id, txn_id)
) STRICT, WITHOUT ROWID;

-- Presence of local users: https://spec.matrix.org/latest/client-server-api/#presence
CREATE TABLE presence (
    user_id          TEXT PRIMARY KEY,
    state            TEXT NOT NULL,        -- online, unavailable, offline
    status_msg       TEXT,
    last_active_ts   INTEGER NOT NULL,
    currently_active INTEGER NOT NULL DEFAULT 0,
    stream_pos       INTEGER NOT NULL
) STRICT;
CREATE INDEX presence_stream ON presence (stream_pos);

-- ---------------------------------------------------------------------------------
-- User directory (POST /user_directory/search): a full-text index over each local
-- user's localpart and display name. Triggers on users and profile_fields keep it in
-- step, so every write path (registration, CLI, profile changes, erasure) updates it
-- in the same transaction without knowing it exists. Who may see whom is decided at
-- query time from the live membership tables; deactivation is checked on users.
CREATE TABLE user_directory (
    id           INTEGER PRIMARY KEY,
    user_id      TEXT NOT NULL UNIQUE,
    localpart    TEXT NOT NULL,
    display_name TEXT                      -- NULL: none, or not a JSON string
) STRICT;
-- unicode61 folds case and diacritics and splits words on punctuation, so "ali" finds
-- "Alice Smith", "smi" finds "alice.smith" and "zoe" finds "Zoë".
CREATE VIRTUAL TABLE user_directory_fts USING fts5 (
    localpart, display_name,
    content = 'user_directory', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2'
);
CREATE TRIGGER user_directory_fts_insert AFTER INSERT ON user_directory BEGIN
    INSERT INTO user_directory_fts (rowid, localpart, display_name)
        VALUES (new.id, new.localpart, new.display_name);
END;
CREATE TRIGGER user_directory_fts_delete AFTER DELETE ON user_directory BEGIN
    INSERT INTO user_directory_fts (user_directory_fts, rowid, localpart, display_name)
        VALUES ('delete', old.id, old.localpart, old.display_name);
END;
CREATE TRIGGER user_directory_fts_update AFTER UPDATE ON user_directory BEGIN
    INSERT INTO user_directory_fts (user_directory_fts, rowid, localpart, display_name)
        VALUES ('delete', old.id, old.localpart, old.display_name);
    INSERT INTO user_directory_fts (rowid, localpart, display_name)
        VALUES (new.id, new.localpart, new.display_name);
END;
CREATE TRIGGER user_directory_user_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_directory (user_id, localpart)
        VALUES (new.user_id, substr(new.user_id, 2, instr(new.user_id, ':') - 2))
        ON CONFLICT (user_id) DO NOTHING;
END;
CREATE TRIGGER user_directory_user_delete AFTER DELETE ON users BEGIN
    DELETE FROM user_directory WHERE user_id = old.user_id;
END;
CREATE TRIGGER user_directory_name_insert AFTER INSERT ON profile_fields
    WHEN new.field = 'displayname' BEGIN
    UPDATE user_directory SET display_name = (
        SELECT CASE WHEN json_valid(v) THEN
            CASE WHEN json_type(v) = 'text' THEN json_extract(v, '$') END END
        FROM (SELECT CAST(new.value AS TEXT) AS v)
    ) WHERE user_id = new.user_id;
END;
CREATE TRIGGER user_directory_name_update AFTER UPDATE OF value ON profile_fields
    WHEN new.field = 'displayname' BEGIN
    UPDATE user_directory SET display_name = (
        SELECT CASE WHEN json_valid(v) THEN
            CASE WHEN json_type(v) = 'text' THEN json_extract(v, '$') END END
        FROM (SELECT CAST(new.value AS TEXT) AS v)
    ) WHERE user_id = new.user_id;
END;
CREATE TRIGGER user_directory_name_delete AFTER DELETE ON profile_fields
    WHEN old.field = 'displayname' BEGIN
    UPDATE user_directory SET display_name = NULL WHERE user_id = old.user_id;
END;

PRAGMA user_version = 1;
