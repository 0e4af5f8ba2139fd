DROP INDEX webhook_deliveries_outcome;
ALTER TABLE webhook_deliveries DROP COLUMN secret_label;
