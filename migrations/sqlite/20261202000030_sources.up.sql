-- Sources: each kind of sender has its own URL (/api/webhooks/{name}),
-- signature schemes, secrets and field mapping. Delivery ids become unique
-- per source, so two senders that happen to use the same id never merge.

CREATE TABLE sources (
    name         TEXT    PRIMARY KEY,
    preset       TEXT    NOT NULL,
    schemes      TEXT    NOT NULL,                 -- comma-separated: hex,standard
    mode         TEXT    NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'flag')),
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    token_header TEXT,                             -- for the token scheme
    mapping      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(mapping)), -- overrides of the preset
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL                  -- every change moves it: nodes reload on it
) STRICT;

-- The built-in source: its secrets, schemes and mode come from the
-- environment, as before sources existed.
INSERT INTO sources (name, preset, schemes, created_at, updated_at)
VALUES ('llm-callback', 'llm-callback', 'hex,standard',
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER),
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));

-- A ring of secrets per source: a rotated-out secret keeps working until
-- expires_at. Stored as given: HMAC verification needs the key itself.
CREATE TABLE source_secrets (
    id         INTEGER PRIMARY KEY,
    source     TEXT    NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    label      TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    UNIQUE (source, label)
) STRICT;

ALTER TABLE webhook_deliveries ADD COLUMN source TEXT;
-- Every request so far was sent to the one webhook there was.
UPDATE webhook_deliveries SET source = 'llm-callback';
CREATE INDEX webhook_deliveries_source ON webhook_deliveries (source, received_at);

-- llm_callbacks gets its source, and its unique key becomes (source,
-- callback_id). SQLite cannot drop a column's UNIQUE constraint, so the
-- table is rebuilt. Dropping the old table deletes its rows first, which
-- cascades to llm_callback_views and fires the count trigger: the views
-- are kept aside and put back, and the count is recomputed. The views'
-- trigger names llm_callbacks, so it goes while the table is missing.
CREATE TEMP TABLE kept_views AS SELECT * FROM llm_callback_views;
DROP TRIGGER llm_callback_views_feed_seq;

CREATE TABLE llm_callbacks_rebuilt (
    id               BLOB    PRIMARY KEY,          -- UUIDv7, time-ordered
    source           TEXT    NOT NULL DEFAULT 'llm-callback',
    callback_id      TEXT    NOT NULL,             -- sender-side delivery id, unique per source
    signature_valid  INTEGER NOT NULL CHECK (signature_valid IN (0, 1)),
    signature_scheme TEXT,
    signature_header TEXT,                         -- header name that carried it
    verified_at      INTEGER,
    payload          TEXT    NOT NULL CHECK (json_valid(payload)),
    payload_preview  TEXT    NOT NULL,
    external_job_id  TEXT,                         -- the group: a job, a session
    workflow_name    TEXT,
    event_type       TEXT,
    status           TEXT    NOT NULL,
    error_message    TEXT,
    delivery_count   INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    feed_seq         INTEGER NOT NULL DEFAULT 0
) STRICT;

INSERT INTO llm_callbacks_rebuilt (
    id, source, callback_id, signature_valid, signature_scheme, signature_header, verified_at,
    payload, payload_preview, external_job_id, workflow_name, event_type, status,
    error_message, delivery_count, created_at, updated_at, feed_seq)
SELECT id, 'llm-callback', callback_id, signature_valid, signature_scheme, signature_header,
       verified_at, payload, payload_preview, external_job_id, workflow_name, event_type, status,
       error_message, delivery_count, created_at, updated_at, feed_seq
  FROM llm_callbacks;

DROP TABLE llm_callbacks;
ALTER TABLE llm_callbacks_rebuilt RENAME TO llm_callbacks;

CREATE UNIQUE INDEX llm_callbacks_source_callback_id ON llm_callbacks (source, callback_id);
CREATE INDEX llm_callbacks_created_at ON llm_callbacks (created_at, id);
CREATE INDEX llm_callbacks_source_created_at ON llm_callbacks (source, created_at, id);
CREATE INDEX llm_callbacks_external_job_id ON llm_callbacks (external_job_id);
CREATE INDEX llm_callbacks_workflow_name ON llm_callbacks (workflow_name);
CREATE INDEX llm_callbacks_event_type ON llm_callbacks (event_type);
CREATE UNIQUE INDEX llm_callbacks_feed ON llm_callbacks (feed_seq);

CREATE TRIGGER llm_callbacks_touch_updated_at
AFTER UPDATE ON llm_callbacks
FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE llm_callbacks
       SET updated_at = CAST(unixepoch('subsec') * 1000000 AS INTEGER)
     WHERE id = NEW.id;
END;

CREATE TRIGGER llm_callbacks_feed_head AFTER INSERT ON llm_callbacks
BEGIN
    UPDATE feed_head SET seq = NEW.feed_seq WHERE id = 1;
END;

CREATE TRIGGER callback_count_insert AFTER INSERT ON llm_callbacks
BEGIN
    UPDATE callback_count SET total = total + 1 WHERE id = 1;
END;

CREATE TRIGGER callback_count_delete AFTER DELETE ON llm_callbacks
BEGIN
    UPDATE callback_count SET total = total - 1 WHERE id = 1;
END;

CREATE TRIGGER llm_callback_views_feed_seq
AFTER INSERT ON llm_callback_views
FOR EACH ROW WHEN NEW.feed_seq IS NULL
BEGIN
    UPDATE llm_callback_views
       SET feed_seq = (SELECT c.feed_seq FROM llm_callbacks c WHERE c.id = NEW.callback_id)
     WHERE callback_id = NEW.callback_id AND admin_user_id = NEW.admin_user_id;
END;

INSERT INTO llm_callback_views
    SELECT * FROM kept_views WHERE callback_id IN (SELECT id FROM llm_callbacks);
DROP TABLE kept_views;
UPDATE callback_count SET total = (SELECT count(*) FROM llm_callbacks) WHERE id = 1;
