-- The full report reads each activity's links in id order through this
-- index; with the URL in it too (INCLUDE, as PostgreSQL allows), an
-- index-only scan answers without visiting each link's row. Made again
-- under the same name, as in sqlite/.
DROP INDEX resource_link_activity;

--bun:split

CREATE INDEX resource_link_activity ON resource_link (activity_id, id) INCLUDE (url);
