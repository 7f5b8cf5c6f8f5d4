-- Undoes 009_activity_crud: activity is made again with its 24-hour CHECK
-- (the copy fails, and nothing changes, if an activity is longer) and
-- without updated_at, its tags, KSBs and links kept as the up file keeps them.

DROP TABLE activity_outbox;

--bun:split

CREATE TABLE activity_old (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES app_user(id),
    title            TEXT    NOT NULL,
    description      TEXT    NOT NULL DEFAULT '',
    activity_date    DATE    NOT NULL CHECK (activity_date GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'),
    duration_hours   REAL    NOT NULL CHECK (duration_hours >= 0 AND duration_hours <= 24),
    activity_type    TEXT    NOT NULL,
    evidence_quality TEXT    NOT NULL DEFAULT 'draft',
    notes            TEXT    NOT NULL DEFAULT '',
    created_at       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

--bun:split

INSERT INTO activity_old (id, user_id, title, description, activity_date, duration_hours,
    activity_type, evidence_quality, notes, created_at)
SELECT id, user_id, title, description, activity_date, duration_hours,
    activity_type, evidence_quality, notes, created_at
FROM activity;

--bun:split

INSERT INTO sqlite_sequence (name, seq)
SELECT 'activity_old', seq FROM sqlite_sequence WHERE name = 'activity'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'activity_old');

--bun:split

UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'activity'), 0))
WHERE name = 'activity_old';

--bun:split

CREATE TABLE m009_activity_tags AS SELECT * FROM activity_tags;

--bun:split

CREATE TABLE m009_activity_ksbs AS SELECT * FROM activity_ksbs;

--bun:split

CREATE TABLE m009_resource_link AS SELECT id, activity_id, url, title FROM resource_link;

--bun:split

DROP TABLE activity;

--bun:split

ALTER TABLE activity_old RENAME TO activity;

--bun:split

ALTER TABLE resource_link DROP COLUMN description;

--bun:split

ALTER TABLE resource_link DROP COLUMN source_type;

--bun:split

ALTER TABLE resource_link DROP COLUMN stage;

--bun:split

INSERT INTO activity_tags SELECT * FROM m009_activity_tags;

--bun:split

INSERT INTO activity_ksbs SELECT * FROM m009_activity_ksbs;

--bun:split

INSERT INTO resource_link SELECT * FROM m009_resource_link;

--bun:split

DROP TABLE m009_activity_tags;

--bun:split

DROP TABLE m009_activity_ksbs;

--bun:split

DROP TABLE m009_resource_link;

--bun:split

CREATE INDEX activity_user_date ON activity (user_id, activity_date DESC, id DESC);

--bun:split

CREATE INDEX activity_user_hours ON activity (user_id, duration_hours);
