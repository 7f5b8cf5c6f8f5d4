DROP TABLE projection_offset;
--bun:split
DROP TABLE task_result;
