-- The plain sentence a failed or retrying task's owner is shown instead
-- of error_message, which is for operators (issue 12). Older rows read as
-- NULL, and the web shows a sentence for their state.
ALTER TABLE task_result ADD COLUMN user_message TEXT;
