-- Sessions signed in before this time are void: set when a password is reset
-- or an account disabled, so those sessions end on every node at once.
ALTER TABLE users ADD COLUMN sessions_valid_after INTEGER NOT NULL DEFAULT 0;

-- Requests that failed authentication are counted, not stored one by one:
-- one row per (address, outcome, minute) whose `count` grows, so a flood of
-- unsigned requests cannot grow the table without bound.
ALTER TABLE webhook_deliveries ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE webhook_deliveries ADD COLUMN aggregate_key TEXT;
CREATE UNIQUE INDEX webhook_deliveries_aggregate ON webhook_deliveries (aggregate_key);
