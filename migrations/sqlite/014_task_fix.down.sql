ALTER TABLE task_result DROP COLUMN fix_label;
ALTER TABLE task_result DROP COLUMN fix_href;
