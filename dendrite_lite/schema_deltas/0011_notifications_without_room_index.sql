-- push_notifications loses its (room_id, stream_pos) index. Only the recount after a
-- receipt used it, and it cost a message into a 500-member room 15 of its ~50 pages
-- written to the WAL (499 entries landing amid other rooms' entries split pages). The
-- recount now walks the room's events after the read mark (events_room_stream) and
-- probes each one's notification by its key, one probe per event where the index
-- scanned every recipient's entry of every event.
DROP INDEX push_notifications_room;
