DROP INDEX resource_link_activity;

--bun:split

CREATE INDEX resource_link_activity ON resource_link (activity_id, id);
