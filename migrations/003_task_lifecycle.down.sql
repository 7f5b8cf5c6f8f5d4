ALTER TABLE task_result DROP COLUMN changed_by;

--bun:split

ALTER TABLE task_result DROP COLUMN next_attempt_at;
