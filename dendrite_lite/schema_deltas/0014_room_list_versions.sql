-- A counter per user that every change to their user_rooms rows raises (a membership,
-- a new membership event, a forget; bumps are the room's since delta 0013), kept by
-- triggers. Sliding sync asks it on every request whether the user's cached room list
-- still holds: one probe, where an aggregate over the user's rows read every one of them
-- (500 rows, ~15 pages, on every long-poll a message wakes).
CREATE TABLE room_list_versions (
    user_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO room_list_versions (user_id, version)
SELECT user_id, 1 FROM user_rooms GROUP BY user_id;

CREATE TRIGGER room_list_versions_insert AFTER INSERT ON user_rooms
BEGIN
    INSERT INTO room_list_versions (user_id, version) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER room_list_versions_update AFTER UPDATE ON user_rooms
BEGIN
    INSERT INTO room_list_versions (user_id, version) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET version = version + 1;
    INSERT INTO room_list_versions (user_id, version) VALUES (OLD.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER room_list_versions_delete AFTER DELETE ON user_rooms
BEGIN
    INSERT INTO room_list_versions (user_id, version) VALUES (OLD.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET version = version + 1;
END;
