ALTER TABLE projection_offset DROP COLUMN stream_created;
