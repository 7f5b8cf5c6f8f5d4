DROP INDEX task_result_status_type;
