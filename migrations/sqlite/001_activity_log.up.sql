-- The slice of the OTJ Helper activity log that background tasks read.

CREATE TABLE app_user (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    email                TEXT    NOT NULL UNIQUE,
    name                 TEXT    NOT NULL DEFAULT '',
    selected_spec        TEXT    REFERENCES spec(code),
    otj_target_hours     REAL    NOT NULL DEFAULT 0,
    weekly_target_hours  REAL    NOT NULL DEFAULT 6,
    timezone             TEXT    NOT NULL DEFAULT 'Europe/London',
    created_at           TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

--bun:split

CREATE TABLE spec (
    code        TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    level       INTEGER NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    ksb_prefix  TEXT    NOT NULL DEFAULT '',
    available   BOOLEAN NOT NULL DEFAULT 1
);

--bun:split

-- code is the stored code (with the standard's prefix, e.g. AK1);
-- natural_code is what people see (K1); sort_order lists K, S, B in
-- number order (K2 before K10), which sorting the codes as text does not.
CREATE TABLE ksb (
    code         TEXT    PRIMARY KEY,
    natural_code TEXT    NOT NULL,
    spec_code    TEXT    NOT NULL REFERENCES spec(code),
    category     TEXT    NOT NULL,
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    sort_order   INTEGER NOT NULL
);

--bun:split

CREATE INDEX ksb_spec ON ksb (spec_code, sort_order);

--bun:split

CREATE TABLE activity (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES app_user(id),
    title            TEXT    NOT NULL,
    description      TEXT    NOT NULL DEFAULT '',
    activity_date    DATE    NOT NULL CHECK (activity_date GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'),
    duration_hours   REAL    NOT NULL CHECK (duration_hours >= 0 AND duration_hours <= 24),
    activity_type    TEXT    NOT NULL,
    evidence_quality TEXT    NOT NULL DEFAULT 'draft',
    notes            TEXT    NOT NULL DEFAULT '',
    created_at       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

--bun:split

CREATE INDEX activity_user_date ON activity (user_id, activity_date DESC, id DESC);

--bun:split

-- Lets the log page total a user's hours without reading every row.
CREATE INDEX activity_user_hours ON activity (user_id, duration_hours);

--bun:split

CREATE TABLE tag (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES app_user(id),
    -- char(31) separates list items in report queries; it must not occur.
    name    TEXT    NOT NULL CHECK (instr(name, char(31)) = 0),
    UNIQUE (user_id, name)
);

--bun:split

CREATE TABLE activity_tags (
    activity_id INTEGER NOT NULL REFERENCES activity(id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tag(id) ON DELETE CASCADE,
    PRIMARY KEY (activity_id, tag_id)
) WITHOUT ROWID;

--bun:split

CREATE TABLE activity_ksbs (
    activity_id INTEGER NOT NULL REFERENCES activity(id) ON DELETE CASCADE,
    ksb_code    TEXT    NOT NULL REFERENCES ksb(code),
    PRIMARY KEY (activity_id, ksb_code)
) WITHOUT ROWID;

--bun:split

CREATE TABLE resource_link (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    activity_id INTEGER NOT NULL REFERENCES activity(id) ON DELETE CASCADE,
    url         TEXT    NOT NULL CHECK (instr(url, char(31)) = 0),
    title       TEXT    NOT NULL DEFAULT ''
);

--bun:split

CREATE INDEX resource_link_activity ON resource_link (activity_id, id);
