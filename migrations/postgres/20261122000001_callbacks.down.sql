DROP TABLE webhook_secrets;
DROP TABLE webhook_deliveries;
DROP TABLE llm_callbacks;
DROP FUNCTION callback_count_track();
DROP TABLE callback_count;
DROP FUNCTION llm_callbacks_take_feed_position();
DROP TABLE feed_head;
DROP FUNCTION llm_callbacks_touch_updated_at();
