DROP INDEX activity_ksbs_ksb;

--bun:split

DROP INDEX activity_user_type_date;

--bun:split

DROP INDEX task_result_created;

--bun:split

DROP INDEX task_result_type;

--bun:split

DROP INDEX task_result_status;

--bun:split

CREATE INDEX task_result_status ON task_result (status, created_at DESC);

--bun:split

DROP INDEX task_result_user_status;

--bun:split

DROP INDEX task_result_user_type;

--bun:split

DROP INDEX task_result_user_created;

--bun:split

CREATE INDEX task_result_user_created ON task_result (user_id, created_at DESC);
