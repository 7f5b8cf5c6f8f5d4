ALTER TABLE task_result DROP COLUMN user_message;
