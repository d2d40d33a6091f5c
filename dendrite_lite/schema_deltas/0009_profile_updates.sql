-- Profile updates through sliding sync (MSC4262, the org.matrix.msc4262.profiles
-- extension): the stream position of each profile field's latest change (set, changed
-- or removed), so a connection can be sent the fields changed since its pos. Kept by
-- triggers on profile_fields, so every path that writes a profile (the profile API,
-- registration, erasure, deactivation, the CLI) records its changes; each change takes
-- the next position of the global stream. A removed field keeps its row: that a field
-- has a row here and none in profile_fields is how a removal is told.
CREATE TABLE profile_updates (
    user_id    TEXT NOT NULL,
    field      TEXT NOT NULL,
    stream_pos INTEGER NOT NULL,
    PRIMARY KEY (user_id, field)
) STRICT, WITHOUT ROWID;
CREATE INDEX profile_updates_by_stream ON profile_updates (stream_pos);

CREATE TRIGGER profile_updates_insert AFTER INSERT ON profile_fields
BEGIN
    UPDATE stream_position SET position = position + 1 WHERE id = 0;
    INSERT INTO profile_updates (user_id, field, stream_pos)
    SELECT NEW.user_id, NEW.field, position FROM stream_position WHERE id = 0
    ON CONFLICT (user_id, field) DO UPDATE SET stream_pos = excluded.stream_pos;
END;

CREATE TRIGGER profile_updates_update AFTER UPDATE OF value ON profile_fields
WHEN NEW.value IS NOT OLD.value
BEGIN
    UPDATE stream_position SET position = position + 1 WHERE id = 0;
    INSERT INTO profile_updates (user_id, field, stream_pos)
    SELECT NEW.user_id, NEW.field, position FROM stream_position WHERE id = 0
    ON CONFLICT (user_id, field) DO UPDATE SET stream_pos = excluded.stream_pos;
END;

CREATE TRIGGER profile_updates_delete AFTER DELETE ON profile_fields
BEGIN
    UPDATE stream_position SET position = position + 1 WHERE id = 0;
    INSERT INTO profile_updates (user_id, field, stream_pos)
    SELECT OLD.user_id, OLD.field, position FROM stream_position WHERE id = 0
    ON CONFLICT (user_id, field) DO UPDATE SET stream_pos = excluded.stream_pos;
END;
