ALTER TABLE task_result DROP COLUMN lease_ms;
