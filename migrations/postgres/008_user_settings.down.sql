ALTER TABLE app_user DROP COLUMN seminar_target_hours;
