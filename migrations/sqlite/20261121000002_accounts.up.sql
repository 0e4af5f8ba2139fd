-- Admin accounts, who viewed which callback, and login throttling.

CREATE TABLE users (
    id            BLOB    PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER
) STRICT;

-- A join table, not an array on the callback: concurrent admins never race.
CREATE TABLE llm_callback_views (
    callback_id   BLOB    NOT NULL REFERENCES llm_callbacks (id) ON DELETE CASCADE,
    admin_user_id BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    viewed_at     INTEGER NOT NULL,
    PRIMARY KEY (callback_id, admin_user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX llm_callback_views_admin ON llm_callback_views (admin_user_id, viewed_at);

CREATE TABLE login_failures (
    id        INTEGER PRIMARY KEY,
    key       TEXT    NOT NULL,         -- "email:<lowercased>" or "addr:<ip>"
    failed_at INTEGER NOT NULL
) STRICT;

CREATE INDEX login_failures_key ON login_failures (key, failed_at);
