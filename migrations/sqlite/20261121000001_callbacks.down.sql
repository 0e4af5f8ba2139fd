DROP TABLE webhook_secrets;
DROP TABLE webhook_deliveries;
DROP TRIGGER llm_callbacks_touch_updated_at;
DROP TABLE llm_callbacks;
