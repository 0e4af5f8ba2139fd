-- Back to one sender: callbacks of other sources go (their delivery ids
-- may collide once unique across the whole table), then the table is
-- rebuilt with callback_id unique on its own (see the up migration).
CREATE TEMP TABLE kept_views AS SELECT * FROM llm_callback_views;
DROP TRIGGER llm_callback_views_feed_seq;

CREATE TABLE llm_callbacks_rebuilt (
    id               BLOB    PRIMARY KEY,          -- UUIDv7, time-ordered
    callback_id      TEXT    NOT NULL UNIQUE,      -- sender-side delivery id
    signature_valid  INTEGER NOT NULL CHECK (signature_valid IN (0, 1)),
    signature_scheme TEXT,
    signature_header TEXT,                         -- header name that carried it
    verified_at      INTEGER,
    payload          TEXT    NOT NULL CHECK (json_valid(payload)),
    payload_preview  TEXT    NOT NULL,
    external_job_id  TEXT,
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
    id, callback_id, signature_valid, signature_scheme, signature_header, verified_at,
    payload, payload_preview, external_job_id, workflow_name, event_type, status,
    error_message, delivery_count, created_at, updated_at, feed_seq)
SELECT id, callback_id, signature_valid, signature_scheme, signature_header,
       verified_at, payload, payload_preview, external_job_id, workflow_name, event_type, status,
       error_message, delivery_count, created_at, updated_at, feed_seq
  FROM llm_callbacks WHERE source = 'llm-callback';

DROP TABLE llm_callbacks;
ALTER TABLE llm_callbacks_rebuilt RENAME TO llm_callbacks;

CREATE INDEX llm_callbacks_created_at ON llm_callbacks (created_at, id);
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

DROP INDEX webhook_deliveries_source;
ALTER TABLE webhook_deliveries DROP COLUMN source;
DROP TABLE source_secrets;
DROP TABLE sources;
