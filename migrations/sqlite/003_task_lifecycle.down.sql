ALTER TABLE task_result DROP COLUMN progress_message;

--bun:split

ALTER TABLE task_result DROP COLUMN progress_percent;

--bun:split

ALTER TABLE task_result DROP COLUMN changed_by;

--bun:split

ALTER TABLE task_result DROP COLUMN next_attempt_at;
