-- Back to one sender: callbacks of other sources go, since their delivery
-- ids may collide once unique across the whole table.
DELETE FROM llm_callbacks WHERE source <> 'llm-callback';
DROP INDEX llm_callbacks_source_created_at;
DROP INDEX llm_callbacks_source_callback_id;
ALTER TABLE llm_callbacks ADD CONSTRAINT llm_callbacks_callback_id_key UNIQUE (callback_id);
ALTER TABLE llm_callbacks DROP COLUMN source;
DROP INDEX webhook_deliveries_source;
ALTER TABLE webhook_deliveries DROP COLUMN source;
DROP TABLE source_secrets;
DROP TABLE sources;
