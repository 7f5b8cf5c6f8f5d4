-- Which stream a projection's position counts in: the stream's creation
-- time, as its driver reports it. A position is meaningless against a
-- stream made anew (a fresh NATS server with the same data dir): its
-- sequences start again from 1, and the projection rebuilds when it sees
-- another stream (issue 14). NULL for positions stored before; those are
-- checked against the stream's last sequence only, then take this one.
ALTER TABLE projection_offset ADD COLUMN stream_created TEXT;
