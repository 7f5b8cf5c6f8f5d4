-- CSV files uploaded for import into the activity log, held here rather
-- than on the web's disk so that a worker on another machine, which
-- shares only the database, can read them. The import job's payload
-- carries only the id; sha256 lets the summary tell a file seen before.
CREATE TABLE import_upload (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES app_user(id),
    sha256     TEXT    NOT NULL,
    body       BLOB    NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

--bun:split

CREATE INDEX import_upload_user ON import_upload (user_id, id);
