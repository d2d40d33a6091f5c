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

-- ---------------------------------------------------------------------------------
-- Server-side key backups: https://spec.matrix.org/latest/client-server-api/#server-side-key-backups
-- A user's versions count up from 1 and are never reused: a deleted version keeps its
-- row (deleted = 1, keys gone) so that deleting it again succeeds and the next is higher.
CREATE TABLE key_backup_versions (
    user_id   TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    version   INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data BLOB NOT NULL,               -- the JSON object as uploaded
    etag      INTEGER NOT NULL DEFAULT 0,  -- bumped whenever the version's keys change
    key_count INTEGER NOT NULL DEFAULT 0,  -- rows of key_backup_keys for the version
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
) STRICT, WITHOUT ROWID;

-- One backed-up megolm session key per (version, room, session); a stored key is only
-- replaced by a better one (the spec's rule, applied in SQL by storage/key_backup.py).
CREATE TABLE key_backup_keys (
    user_id             TEXT NOT NULL,
    version             INTEGER NOT NULL,
    room_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count     INTEGER NOT NULL,
    is_verified         INTEGER NOT NULL,
    session_data        BLOB NOT NULL,     -- the JSON object as uploaded
    PRIMARY KEY (user_id, version, room_id, session_id),
    FOREIGN KEY (user_id, version) REFERENCES key_backup_versions (user_id, version)
        ON DELETE CASCADE
) STRICT;

-- Dehydrated devices (MSC3814): at most one per user. The device itself is a row of
-- `devices` (so to-device messages reach it); these rows go with that row.
CREATE TABLE dehydrated_devices (
    user_id     TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    device_data BLOB NOT NULL,             -- the JSON object as uploaded
    created_ts  INTEGER NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT;

-- ---------------------------------------------------------------------------------
-- End-to-end encryption keys: https://spec.matrix.org/latest/client-server-api/#end-to-end-encryption
-- A device's keys go with the device (foreign keys); so do signatures of and by it
-- (trigger below). Key JSON is stored as canonical JSON without `unsigned`.

-- Device identity keys, signed by the device's own ed25519 key. The identity keys never
-- change for a device: a new identity is a new device.
CREATE TABLE e2e_device_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    ed25519    TEXT NOT NULL,
    curve25519 TEXT,
    key_json   BLOB NOT NULL,
    stream_pos INTEGER NOT NULL,           -- when they last changed
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- One-time keys: each is handed out once (deleted as it is claimed), oldest upload first.
CREATE TABLE e2e_one_time_keys (
    id         INTEGER PRIMARY KEY,        -- upload order
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   BLOB NOT NULL,
    UNIQUE (user_id, device_id, algorithm, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT;
-- The rowid ends every index entry: claims take the oldest key of an algorithm from here.
CREATE INDEX e2e_one_time_keys_claim ON e2e_one_time_keys (user_id, device_id, algorithm);

-- Fallback keys: at most one per device and algorithm, handed out (and marked used)
-- when the one-time keys have run out, until the device replaces it.
CREATE TABLE e2e_fallback_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   BLOB NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Cross-signing keys: each user's current master, self-signing and user-signing key.
CREATE TABLE e2e_cross_signing_keys (
    user_id    TEXT NOT NULL,
    key_type   TEXT NOT NULL,              -- master, self_signing, user_signing
    public_key TEXT NOT NULL,              -- unpadded base64 ed25519 public key
    key_json   BLOB NOT NULL,
    stream_pos INTEGER NOT NULL,
    PRIMARY KEY (user_id, key_type)
) STRICT, WITHOUT ROWID;

-- Signatures from /keys/signatures/upload, merged into the keys they sign when served:
-- a user's devices signed by their self-signing key, their master key signed by their
-- devices, other users' master keys signed by their user-signing key.
CREATE TABLE e2e_signatures (
    target_user_id TEXT NOT NULL,
    target_kind    TEXT NOT NULL,          -- 'device' or 'master'
    target_key_id  TEXT NOT NULL,          -- the device ID or the master public key
    signer_user_id TEXT NOT NULL,
    signer_key_id  TEXT NOT NULL,          -- 'ed25519:<device ID or public key>'
    signature      TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_kind, target_key_id, signer_user_id, signer_key_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX e2e_signatures_signer ON e2e_signatures (signer_user_id, signer_key_id);
CREATE TRIGGER e2e_device_keys_delete AFTER DELETE ON e2e_device_keys BEGIN
    DELETE FROM e2e_signatures WHERE target_user_id = old.user_id
        AND target_kind = 'device' AND target_key_id = old.device_id;
    DELETE FROM e2e_signatures WHERE signer_user_id = old.user_id
        AND signer_key_id = 'ed25519:' || old.device_id;
END;

-- Device-list changes on the global stream (device keys published or changed, devices
-- with keys deleted, cross-signing keys and signatures): /sync's device_lists and
-- /keys/changes. audience NULL: for everyone sharing a room with user_id; otherwise only
-- for that one user (their own user-signing key, or signatures it made).
CREATE TABLE device_list_changes (
    stream_pos INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    audience   TEXT,
    PRIMARY KEY (stream_pos, user_id)
) STRICT, WITHOUT ROWID;

-- Membership history, for device lists: who shared a room with whom at a sync token.
CREATE INDEX events_membership_history ON events (room_id, state_key, stream_pos, membership)
    WHERE membership IS NOT NULL;
CREATE INDEX events_membership_stream ON events (stream_pos, room_id, state_key)
    WHERE membership IS NOT NULL;

-- ---------------------------------------------------------------------------------
-- Push notifications: https://spec.matrix.org/latest/client-server-api/#push-notifications
-- (dendrite_lite/push/). Rules are evaluated in the send path's write unit, so the
-- notifications and counts of an event commit with the event.

-- A user's own push rules; `priority` orders the rules of one kind, highest first.
-- The server-default rules are not stored (dendrite_lite/push/defaults.py).
CREATE TABLE push_rules (
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,              -- override, content, room, sender, underride
    rule_id    TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    conditions BLOB,                       -- JSON list (override and underride rules)
    pattern    TEXT,                       -- content rules
    actions    BLOB NOT NULL,              -- JSON list
    enabled    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, kind, rule_id)
) STRICT, WITHOUT ROWID;

-- A user's `enabled` and `actions` for server-default rules (NULL: as defined).
CREATE TABLE push_rule_defaults (
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    enabled INTEGER,
    actions BLOB,
    PRIMARY KEY (user_id, kind, rule_id)
) STRICT, WITHOUT ROWID;

-- Every event that notified a local user (its matching rule had "notify"): what
-- GET /notifications lists and pushers deliver. Keyed by the event's position first, so
-- the rows an event adds for all its recipients sit together: a message to a room of
-- 200 writes a few pages, not one page per recipient.
CREATE TABLE push_notifications (
    stream_pos INTEGER NOT NULL,           -- the event's position
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    event_nid  INTEGER NOT NULL,
    thread_id  TEXT NOT NULL,              -- 'main', or the thread root's event ID
    highlight  INTEGER NOT NULL,
    actions    BLOB NOT NULL,              -- JSON list: the matching rule's actions
    ts         INTEGER NOT NULL,
    PRIMARY KEY (stream_pos, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX push_notifications_room ON push_notifications (room_id, stream_pos);
CREATE INDEX push_notifications_highlight ON push_notifications (user_id, stream_pos)
    WHERE highlight = 1;

-- Unread notification counts of joined rooms, per thread: raised in the send path,
-- recounted from push_notifications when a receipt moves a read mark. /sync's
-- unread_notifications sums a room's threads. Keyed by room first (an event updates
-- its recipients' rows together); last_pos is the newest notification counted.
CREATE TABLE push_counts (
    room_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    notifications INTEGER NOT NULL,
    highlights    INTEGER NOT NULL,
    last_pos      INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, thread_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX push_counts_user ON push_counts (user_id);

-- How far a user has read, from their own m.read and m.read.private receipts: per
-- room and thread ('' for unthreaded receipts, which cover every thread). Only ever
-- moves forward, so the more recent of the two receipts wins.
CREATE TABLE push_read_marks (
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    stream_pos INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
) STRICT, WITHOUT ROWID;

-- HTTP pushers. A pusher belongs to the device that set it and goes with it (logout,
-- device deletion, deactivation). last_stream_pos: the notifications up to there are
-- delivered (or given up on); the sender carries on from it after a restart.
CREATE TABLE pushers (
    id                  INTEGER PRIMARY KEY,
    user_id             TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    kind                TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    pushkey             TEXT NOT NULL,
    app_display_name    TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag         TEXT,
    lang                TEXT NOT NULL,
    data                BLOB NOT NULL,     -- JSON object, url included
    pushkey_ts          INTEGER NOT NULL,  -- ms
    last_stream_pos     INTEGER NOT NULL,
    failing_since       INTEGER,           -- ms; NULL: the gateway is not failing
    UNIQUE (user_id, app_id, pushkey),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX pushers_key ON pushers (app_id, pushkey);
CREATE INDEX pushers_device ON pushers (user_id, device_id);

PRAGMA user_version = 1;
