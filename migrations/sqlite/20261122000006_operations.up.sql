-- Which secret verified each accepted request (a label such as
-- "LLM_WEBHOOK_SECRET #2", never the secret), so an operator can tell when
-- senders have moved to a new secret; and the index that keeps the
-- deliveries tab's outcome filter cheap.
ALTER TABLE webhook_deliveries ADD COLUMN secret_label TEXT;
CREATE INDEX webhook_deliveries_outcome ON webhook_deliveries (outcome, received_at);
