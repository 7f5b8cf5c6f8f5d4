-- The full report (issue 5) reads each activity's links in id order
-- through this index. With the URL in it too, the index alone answers:
-- no visit to the table row of every link, which for a log of a million
-- activities was a third of the time spent reading links. SQLite cannot
-- add a column to an index, so it is made again under the same name.
DROP INDEX resource_link_activity;

--bun:split

CREATE INDEX resource_link_activity ON resource_link (activity_id, id, url);
