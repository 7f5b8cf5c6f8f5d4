-- A user's seminar-hours target, set on the settings page beside the OTJ
-- and weekly ones. As for those, 0 means no target: a target of no hours
-- means nothing, and a NOT NULL column needs no table rebuild on SQLite.
ALTER TABLE app_user ADD COLUMN seminar_target_hours REAL NOT NULL DEFAULT 0;
