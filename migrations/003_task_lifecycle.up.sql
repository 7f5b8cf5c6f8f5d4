-- Retries and cancel (issue 3): when a retrying task runs next, and who
-- cancelled or retried it. Older rows read as NULL / ''.
ALTER TABLE task_result ADD COLUMN next_attempt_at TIMESTAMP;

--bun:split

ALTER TABLE task_result ADD COLUMN changed_by TEXT NOT NULL DEFAULT '';
