-- The user's rows by the position of their last membership change, for an incremental
-- /sync's "memberships changed since": a range of this index, where the query read all
-- of the user's rows (500 of them, on every long-poll a message wakes). Rows change
-- position only with memberships now that bumps are the room's (delta 0013), so the
-- index costs a membership change one entry and a message nothing.
CREATE INDEX user_rooms_changes ON user_rooms (user_id, stream_pos);
