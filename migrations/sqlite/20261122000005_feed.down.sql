DROP TRIGGER llm_callbacks_feed_head;
DROP INDEX llm_callbacks_feed;
ALTER TABLE llm_callbacks DROP COLUMN feed_seq;
DROP TABLE feed_head;
