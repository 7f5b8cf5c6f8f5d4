-- Retries, cancel and progress (issue 3): when a retrying task runs next,
-- who cancelled or retried it, and how far a running task has got. Older
-- rows read as NULL / '' / 0.
ALTER TABLE task_result ADD COLUMN next_attempt_at TIMESTAMP;

--bun:split

ALTER TABLE task_result ADD COLUMN changed_by TEXT NOT NULL DEFAULT '';

--bun:split

ALTER TABLE task_result ADD COLUMN progress_percent INTEGER NOT NULL DEFAULT 0;

--bun:split

ALTER TABLE task_result ADD COLUMN progress_message TEXT NOT NULL DEFAULT '';
