-- Sources: each kind of sender has its own URL (/api/webhooks/{name}),
-- signature schemes, secrets and field mapping. Delivery ids become unique
-- per source, so two senders that happen to use the same id never merge.

CREATE TABLE sources (
    name         text        PRIMARY KEY,
    preset       text        NOT NULL,
    schemes      text        NOT NULL,             -- comma-separated: hex,standard
    mode         text        NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'flag')),
    enabled      boolean     NOT NULL DEFAULT true,
    token_header text,                             -- for the token scheme
    mapping      text        NOT NULL DEFAULT '{}', -- overrides of the preset, a JSON object
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL              -- every change moves it: nodes reload on it
);

-- The built-in source: its secrets, schemes and mode come from the
-- environment, as before sources existed.
INSERT INTO sources (name, preset, schemes, created_at, updated_at)
VALUES ('llm-callback', 'llm-callback', 'hex,standard', now(), now());

-- A ring of secrets per source: a rotated-out secret keeps working until
-- expires_at. Stored as given: HMAC verification needs the key itself.
CREATE TABLE source_secrets (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source     text        NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    label      text        NOT NULL,
    secret     text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    UNIQUE (source, label)
);

ALTER TABLE webhook_deliveries ADD COLUMN source text;
-- Every request so far was sent to the one webhook there was.
UPDATE webhook_deliveries SET source = 'llm-callback';
CREATE INDEX webhook_deliveries_source ON webhook_deliveries (source, received_at);

-- Existing callbacks belong to the built-in source; the delivery id is
-- unique per source from now on.
ALTER TABLE llm_callbacks ADD COLUMN source text NOT NULL DEFAULT 'llm-callback';
ALTER TABLE llm_callbacks DROP CONSTRAINT llm_callbacks_callback_id_key;
CREATE UNIQUE INDEX llm_callbacks_source_callback_id ON llm_callbacks (source, callback_id);
CREATE INDEX llm_callbacks_source_created_at ON llm_callbacks (source, created_at, id);
