-- API tokens: read-only access for scripts and the `listen` / `replay`
-- commands, as the user who owns them. Only the SHA-256 of a token is
-- stored; the token itself is shown once, when it is created.
CREATE TABLE api_tokens (
    id           BLOB    PRIMARY KEY,                  -- UUIDv7
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,              -- lowercase hex SHA-256
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

-- Names are unique among a user's tokens that are still in use, so a
-- revoked token's name can be given to its replacement.
CREATE UNIQUE INDEX api_tokens_user_name ON api_tokens (user_id, name) WHERE revoked_at IS NULL;
