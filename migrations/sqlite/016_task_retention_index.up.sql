-- TASK_RETENTION (issue 26): every web process looks, every tenth of the
-- retention, for finished tasks whose newest event is older than it. The
-- index finds those few by state and age, whatever the table holds.
CREATE INDEX task_result_status_updated ON task_result (status, updated_at);
