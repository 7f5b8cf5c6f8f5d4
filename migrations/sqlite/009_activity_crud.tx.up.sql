-- The activity log becomes editable from the web (issue 16): links gain a
-- CORE stage, a source type and a description; an activity may last up
-- to 100 hours (a week's course) and records when it was last changed;
-- and every change is written to activity_outbox in the same transaction,
-- for the web process to relay to JetStream.
--
-- SQLite cannot alter a CHECK, so activity is made again. This file runs
-- in one transaction (.tx.), where PRAGMA foreign_keys cannot be turned
-- off; dropping the old table would then delete every tag, KSB and link
-- row through ON DELETE CASCADE. So those rows are copied aside first and
-- put back after, with their ids; activity keeps its ids and its
-- AUTOINCREMENT high-water mark, so no deleted id is ever reused.

ALTER TABLE resource_link ADD COLUMN stage TEXT NOT NULL DEFAULT '';

--bun:split

ALTER TABLE resource_link ADD COLUMN source_type TEXT NOT NULL DEFAULT '';

--bun:split

ALTER TABLE resource_link ADD COLUMN description TEXT NOT NULL DEFAULT '';

--bun:split

CREATE TABLE activity_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES app_user(id),
    title            TEXT    NOT NULL,
    description      TEXT    NOT NULL DEFAULT '',
    activity_date    DATE    NOT NULL CHECK (activity_date GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'),
    duration_hours   REAL    NOT NULL CHECK (duration_hours >= 0 AND duration_hours <= 100),
    activity_type    TEXT    NOT NULL,
    evidence_quality TEXT    NOT NULL DEFAULT 'draft',
    notes            TEXT    NOT NULL DEFAULT '',
    created_at       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

--bun:split

INSERT INTO activity_new (id, user_id, title, description, activity_date, duration_hours,
    activity_type, evidence_quality, notes, created_at, updated_at)
SELECT id, user_id, title, description, activity_date, duration_hours,
    activity_type, evidence_quality, notes, created_at, created_at
FROM activity;

--bun:split

-- The old table's high-water mark, which may be above its largest id.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'activity_new', seq FROM sqlite_sequence WHERE name = 'activity'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'activity_new');

--bun:split

UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'activity'), 0))
WHERE name = 'activity_new';

--bun:split

CREATE TABLE m009_activity_tags AS SELECT * FROM activity_tags;

--bun:split

CREATE TABLE m009_activity_ksbs AS SELECT * FROM activity_ksbs;

--bun:split

CREATE TABLE m009_resource_link AS SELECT * FROM resource_link;

--bun:split

DROP TABLE activity;

--bun:split

ALTER TABLE activity_new RENAME TO activity;

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

--bun:split

-- One row per change not yet relayed to JetStream; the relay deletes it
-- once the stream has acknowledged it. msg_id is the Nats-Msg-Id, so a
-- row published twice (a relay that stopped between the ack and the
-- delete, or two web processes) is stored once.
CREATE TABLE activity_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id     TEXT    NOT NULL UNIQUE,
    subject    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
