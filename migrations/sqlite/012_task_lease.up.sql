-- The lease the running attempt's worker holds it under, in milliseconds,
-- as its started event records it (issue 24): a running task whose newest
-- event is older than this has lost its worker, and its page says so.
-- Rows of attempts started before workers recorded it read 0: never lost.
ALTER TABLE task_result ADD COLUMN lease_ms INTEGER NOT NULL DEFAULT 0;
