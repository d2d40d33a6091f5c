-- Incremental /sync asks which rooms have new receipts in a stream window, without
-- naming the rooms (sync/rooms.py _candidate_rooms): that needs stream_pos first.
CREATE INDEX receipts_by_stream ON receipts (stream_pos);
