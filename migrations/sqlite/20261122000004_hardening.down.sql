DROP INDEX webhook_deliveries_aggregate;
ALTER TABLE webhook_deliveries DROP COLUMN aggregate_key;
ALTER TABLE webhook_deliveries DROP COLUMN count;
ALTER TABLE users DROP COLUMN sessions_valid_after;
