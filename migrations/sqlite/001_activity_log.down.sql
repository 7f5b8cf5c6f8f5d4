DROP TABLE resource_link;
--bun:split
DROP TABLE activity_ksbs;
--bun:split
DROP TABLE activity_tags;
--bun:split
DROP TABLE tag;
--bun:split
DROP TABLE activity;
--bun:split
DROP TABLE ksb;
--bun:split
DROP TABLE spec;
--bun:split
DROP TABLE app_user;
