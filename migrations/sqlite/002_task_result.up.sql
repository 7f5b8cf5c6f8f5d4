-- task_result is a projection of the job event stream (see modules/tasks).
-- It is written only by the projection and can be rebuilt from the stream.
-- The seed's columns come first; the rest are what the projection needs.
CREATE TABLE task_result (
    id                  TEXT    PRIMARY KEY,          -- job id
    user_id             INTEGER NOT NULL,
    task_type           TEXT    NOT NULL,
    status              TEXT    NOT NULL DEFAULT 'pending',
    result_data         TEXT,                         -- the handler's one-line summary
    result_path         TEXT,                         -- object name in the results bucket
    error_message       TEXT,
    created_at          TIMESTAMP NOT NULL,
    completed_at        TIMESTAMP,
    started_at          TIMESTAMP,
    updated_at          TIMESTAMP NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL DEFAULT 1,
    worker              TEXT    NOT NULL DEFAULT '',
    result_name         TEXT,                         -- download file name
    result_content_type TEXT,
    result_size         INTEGER,
    result_digest       TEXT,
    last_seq            INTEGER NOT NULL              -- stream sequence of the last applied event
);

--bun:split

CREATE INDEX task_result_user_created ON task_result (user_id, created_at DESC);

--bun:split

CREATE INDEX task_result_status ON task_result (status, created_at DESC);

--bun:split

-- Where each projection has read the stream up to, written in the same
-- transaction as the rows it changed.
CREATE TABLE projection_offset (
    name TEXT    PRIMARY KEY,
    seq  INTEGER NOT NULL
);
