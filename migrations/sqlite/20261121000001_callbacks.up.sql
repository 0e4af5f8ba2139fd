-- Callbacks, their delivery audit log and generated webhook secrets.
-- Times are Unix microseconds (INTEGER): exact, cheap to compare, and the
-- (created_at, id) pair is the keyset of every cursor.

CREATE TABLE llm_callbacks (
    id               BLOB    PRIMARY KEY,          -- UUIDv7, time-ordered
    callback_id      TEXT    NOT NULL UNIQUE,      -- sender-side delivery id
    signature_valid  INTEGER NOT NULL CHECK (signature_valid IN (0, 1)),
    signature_scheme TEXT,                         -- hmac_sha256_hex | standard_webhooks
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
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX llm_callbacks_created_at ON llm_callbacks (created_at, id);
CREATE INDEX llm_callbacks_external_job_id ON llm_callbacks (external_job_id);
CREATE INDEX llm_callbacks_workflow_name ON llm_callbacks (workflow_name);
CREATE INDEX llm_callbacks_event_type ON llm_callbacks (event_type);

-- Keeps updated_at current for any update that does not set it itself.
CREATE TRIGGER llm_callbacks_touch_updated_at
AFTER UPDATE ON llm_callbacks
FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE llm_callbacks
       SET updated_at = CAST(unixepoch('subsec') * 1000000 AS INTEGER)
     WHERE id = NEW.id;
END;

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    received_at      INTEGER NOT NULL,
    request_id       TEXT,
    outcome          TEXT    NOT NULL,  -- accepted, duplicate, invalid_signature, ...
    http_status      INTEGER NOT NULL,
    processing_us    INTEGER NOT NULL,
    body_bytes       INTEGER NOT NULL,
    remote_addr      TEXT,
    callback_id      TEXT,              -- delivery id, when one was derived
    llm_callback_id  BLOB,              -- the stored row, when there is one
    signature_scheme TEXT
) STRICT;

CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);

CREATE TABLE webhook_secrets (
    id         INTEGER PRIMARY KEY,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER                  -- set when rotated out; valid until then
) STRICT;
