-- Finding things (issue 24 §6): every list query is answered from an
-- index, never by reading the whole table. The task list pages by keyset,
-- (created_at, id) after the filters, so each index ends in both: a
-- user's tasks, of one type, in one state; the operators' lists of every
-- user's, by state, by type or all. The activity log filtered by type is
-- the user's rows of that type in date order.
DROP INDEX task_result_user_created;

--bun:split

CREATE INDEX task_result_user_created ON task_result (user_id, created_at, id);

--bun:split

CREATE INDEX task_result_user_type ON task_result (user_id, task_type, created_at, id);

--bun:split

CREATE INDEX task_result_user_status ON task_result (user_id, status, created_at, id);

--bun:split

DROP INDEX task_result_status;

--bun:split

CREATE INDEX task_result_status ON task_result (status, created_at, id);

--bun:split

CREATE INDEX task_result_type ON task_result (task_type, created_at, id);

--bun:split

CREATE INDEX task_result_created ON task_result (created_at, id);

--bun:split

CREATE INDEX activity_user_type_date ON activity (user_id, activity_type, activity_date, id);

--bun:split

-- The log filtered by a KSB may be found from the KSB's side: the
-- activities that have it, then the user's among them.
CREATE INDEX activity_ksbs_ksb ON activity_ksbs (ksb_code, activity_id);
