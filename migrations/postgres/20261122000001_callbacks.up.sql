-- Callbacks, the live feed, the delivery audit log and generated secrets.
-- PostgreSQL is the backend several nodes share; see docs/ARCHITECTURE.md.

CREATE TABLE llm_callbacks (
    id               uuid        PRIMARY KEY,          -- UUIDv7, time-ordered
    callback_id      text        NOT NULL UNIQUE,      -- sender-side delivery id
    signature_valid  boolean     NOT NULL,
    signature_scheme text,                             -- hmac_sha256_hex | standard_webhooks
    signature_header text,                             -- header name that carried it
    verified_at      timestamptz,
    -- The body exactly as received: signatures, exports and "Copy JSON"
    -- need its bytes, which jsonb does not keep (key order, spacing,
    -- duplicate keys).
    payload          text        NOT NULL,
    -- The same document as jsonb, for queries and indexes. NULL when jsonb
    -- cannot hold it (a \u0000 in a string, a number beyond numeric's
    -- range such as 1e-20000): see inbox_try_jsonb below.
    payload_json     jsonb,
    payload_preview  text        NOT NULL,
    external_job_id  text,
    workflow_name    text,
    event_type       text,
    status           text        NOT NULL,
    error_message    text,
    delivery_count   bigint      NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    -- Position in the live feed, handed out in commit order (below).
    feed_seq         bigint      NOT NULL UNIQUE
);

CREATE INDEX llm_callbacks_created_at ON llm_callbacks (created_at, id);

-- Valid JSON that jsonb refuses must not fail the insert of a callback.
CREATE FUNCTION inbox_try_jsonb(body text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN body::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;
CREATE INDEX llm_callbacks_external_job_id ON llm_callbacks (external_job_id);
CREATE INDEX llm_callbacks_workflow_name ON llm_callbacks (workflow_name);
CREATE INDEX llm_callbacks_event_type ON llm_callbacks (event_type);

-- Keeps updated_at current for any update that does not set it itself.
CREATE FUNCTION llm_callbacks_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at = OLD.updated_at THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER llm_callbacks_touch_updated_at
BEFORE UPDATE ON llm_callbacks
FOR EACH ROW EXECUTE FUNCTION llm_callbacks_touch_updated_at();

-- The live feed's head. PostgreSQL sequences are not handed out in commit
-- order, so positions come from this row instead: taking one locks the row
-- until the transaction ends, and PostgreSQL makes a commit visible before
-- it releases the transaction's locks. So whoever takes the next position
-- starts after every earlier position is visible, and a reader that sees
-- position N sees every position below N, on every node.
CREATE TABLE feed_head (
    id  integer PRIMARY KEY CHECK (id = 1),
    seq bigint  NOT NULL
);
INSERT INTO feed_head (id, seq) VALUES (1, 0);

-- The server's writer locks the row (SELECT … FOR UPDATE) at the start of
-- each batch, numbers the batch's callbacks itself and moves the head once.
-- Any other insert (an import, a hand-made row) gets its position here,
-- under the same lock.
CREATE FUNCTION llm_callbacks_take_feed_position() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.feed_seq IS NULL THEN
        UPDATE feed_head SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO NEW.feed_seq;
    END IF;
    RETURN NEW;
END;
$$;

-- BEFORE INSERT also runs for an insert that then meets ON CONFLICT: such a
-- retried callback can leave a gap in the positions, which readers ignore.
CREATE TRIGGER llm_callbacks_take_feed_position
BEFORE INSERT ON llm_callbacks
FOR EACH ROW EXECUTE FUNCTION llm_callbacks_take_feed_position();

-- How many callbacks exist, so the unread count is a lookup.
CREATE TABLE callback_count (
    id    integer PRIMARY KEY CHECK (id = 1),
    total bigint  NOT NULL
);
INSERT INTO callback_count (id, total) VALUES (1, 0);

CREATE FUNCTION callback_count_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE callback_count SET total = total + 1 WHERE id = 1;
    ELSE
        UPDATE callback_count SET total = total - 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER callback_count_track
AFTER INSERT OR DELETE ON llm_callbacks
FOR EACH ROW EXECUTE FUNCTION callback_count_track();

CREATE TABLE webhook_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at      timestamptz NOT NULL,
    request_id       text,
    outcome          text        NOT NULL,  -- accepted, duplicate, invalid_signature, ...
    http_status      integer     NOT NULL,
    processing_us    bigint      NOT NULL,
    body_bytes       bigint      NOT NULL,
    remote_addr      text,
    callback_id      text,                  -- delivery id, when one was derived
    llm_callback_id  uuid,                  -- the stored row, when there is one
    signature_scheme text,
    -- Requests that failed authentication are counted per (minute, address,
    -- outcome, status) under one aggregate_key instead of stored one by one.
    count            bigint      NOT NULL DEFAULT 1,
    aggregate_key    text        UNIQUE,
    secret_label     text                   -- which secret verified it, never the secret
);

CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
CREATE INDEX webhook_deliveries_outcome ON webhook_deliveries (outcome, received_at);

CREATE TABLE webhook_secrets (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret     text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz                  -- set when rotated out; valid until then
);
