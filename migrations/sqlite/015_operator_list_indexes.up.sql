-- The operator console (issue 27 §3) lists every user's tasks of one type
-- in one state, such as the failed weekly digests: without an index on
-- both, the list reads every task in the state (or of the type) and drops
-- the rest. It pages by keyset, (created_at, id), so the index ends in both.
CREATE INDEX task_result_status_type ON task_result (status, task_type, created_at, id);
