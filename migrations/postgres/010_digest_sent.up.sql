-- One row per user and ISO week whose weekly digest was sent or is being
-- sent. The row is claimed (state 'sending') before the mail goes out and
-- marked 'sent' after, so that a retried or redelivered digest job never
-- mails the same week twice. message_id is the Message-ID the mail carries,
-- derived from the user and the week.
CREATE TABLE digest_sent (
    user_id    BIGINT  NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,
    week       TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('sending', 'sent')),
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, week)
);
