-- Simplified sliding sync (MSC4186): per-connection state, so that a restart of the
-- server does not send every client back to an initial sync.
-- A connection is (user, device, conn_id). Each response creates a position; the rooms
-- table records, per room, what the connection was sent up to which stream position and
-- with which room config, as of the position that sent it. A room's state at position P
-- is its row with the greatest pos_nid <= P.
CREATE TABLE sliding_sync_connections (
    conn_nid   INTEGER PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    conn_id    TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    UNIQUE (user_id, device_id, conn_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT;

CREATE TABLE sliding_sync_positions (
    pos_nid       INTEGER PRIMARY KEY,
    conn_nid      INTEGER NOT NULL REFERENCES sliding_sync_connections (conn_nid)
                  ON DELETE CASCADE,
    stream_pos    INTEGER NOT NULL,     -- the global stream position the response covered
    typing_serial INTEGER NOT NULL,
    lists         BLOB NOT NULL         -- JSON: list name -> [count, [room ids in range]]
) STRICT;
CREATE INDEX sliding_sync_positions_conn ON sliding_sync_positions (conn_nid);

CREATE TABLE sliding_sync_rooms (
    conn_nid   INTEGER NOT NULL REFERENCES sliding_sync_connections (conn_nid)
               ON DELETE CASCADE,
    room_id    TEXT NOT NULL,
    pos_nid    INTEGER NOT NULL,
    stream_pos INTEGER NOT NULL,        -- everything up to here was sent
    membership TEXT NOT NULL,           -- the user's membership it was sent with
    config     BLOB NOT NULL,           -- JSON: the room config it was sent with
    members    BLOB NOT NULL,           -- JSON: members whose member event it was sent
    PRIMARY KEY (conn_nid, room_id, pos_nid)
) STRICT, WITHOUT ROWID;
