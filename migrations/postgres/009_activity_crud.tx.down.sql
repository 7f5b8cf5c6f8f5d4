-- Undoes 009_activity_crud (fails, changing nothing, if an activity is
-- longer than the old 24-hour limit).

DROP TABLE activity_outbox;

--bun:split

ALTER TABLE activity DROP COLUMN updated_at;

--bun:split

ALTER TABLE activity DROP CONSTRAINT activity_duration_hours_check;

--bun:split

ALTER TABLE activity ADD CONSTRAINT activity_duration_hours_check CHECK (duration_hours >= 0 AND duration_hours <= 24);

--bun:split

ALTER TABLE resource_link DROP COLUMN description;

--bun:split

ALTER TABLE resource_link DROP COLUMN source_type;

--bun:split

ALTER TABLE resource_link DROP COLUMN stage;
