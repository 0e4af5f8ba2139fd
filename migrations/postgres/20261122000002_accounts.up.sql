-- Accounts, who viewed which callback, login throttling, API tokens and
-- sessions: everything a node needs to serve any request.

CREATE TABLE users (
    id                   uuid        PRIMARY KEY,
    email                text        NOT NULL,
    password_hash        text        NOT NULL,
    role                 text        NOT NULL CHECK (role IN ('admin', 'viewer')),
    disabled             boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL,
    last_login_at        timestamptz,
    -- Sessions signed in before this time are void (password reset, disable).
    sessions_valid_after timestamptz NOT NULL DEFAULT 'epoch'
);

-- Emails are unique whatever their case.
CREATE UNIQUE INDEX users_email ON users (lower(email));

-- A join table, not an array on the callback: concurrent admins never race.
CREATE TABLE llm_callback_views (
    callback_id   uuid        NOT NULL REFERENCES llm_callbacks (id) ON DELETE CASCADE,
    admin_user_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    viewed_at     timestamptz NOT NULL,
    PRIMARY KEY (callback_id, admin_user_id)
);

CREATE INDEX llm_callback_views_admin ON llm_callback_views (admin_user_id, viewed_at);

-- Sign-in attempts, reserved before the password is checked.
CREATE TABLE login_failures (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key       text        NOT NULL,         -- "pair:<ip>|<email>" or "addr:<ip>"
    failed_at timestamptz NOT NULL
);

CREATE INDEX login_failures_key ON login_failures (key, failed_at);

-- Read-only API tokens; only their SHA-256 is stored.
CREATE TABLE api_tokens (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    token_hash   text        NOT NULL UNIQUE,  -- lowercase hex SHA-256
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE UNIQUE INDEX api_tokens_user_name ON api_tokens (user_id, name) WHERE revoked_at IS NULL;

-- Sessions (tower-sessions' PostgreSQL store, pointed at this table), so a
-- session made on one node is valid on every node.
CREATE TABLE tower_sessions (
    id          text        PRIMARY KEY,
    data        bytea       NOT NULL,
    expiry_date timestamptz NOT NULL
);

CREATE INDEX tower_sessions_expiry ON tower_sessions (expiry_date);
