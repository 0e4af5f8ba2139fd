-- Browsers that signed in before ("known devices"). Their sign-in attempts
-- count under a key of their own, not under the account's, which guessers
-- from many addresses use up. Only the SHA-256 of the device cookie's
-- random token is stored.

CREATE TABLE login_devices (
    token_hash   TEXT    PRIMARY KEY,  -- lowercase hex SHA-256 of the token
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX login_devices_user ON login_devices (user_id, last_used_at);
