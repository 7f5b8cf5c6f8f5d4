-- Where the owner of a task that failed because it refused its input puts
-- that input right (a page of the app and the link's text), from the failed
-- event's fix (issue 24): the task list offers it instead of Retry.
ALTER TABLE task_result ADD COLUMN fix_href TEXT;
ALTER TABLE task_result ADD COLUMN fix_label TEXT;
