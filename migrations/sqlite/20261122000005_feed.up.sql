-- The live feed: every stored callback gets a position assigned inside the
-- writer's transaction. SQLite has one writer, so positions are handed out
-- in commit order, and a reader that sees position N sees every position
-- below N: a cursor on this column never skips a callback committed late.
-- (created_at, id) stays the history order.

CREATE TABLE feed_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
) STRICT;

ALTER TABLE llm_callbacks ADD COLUMN feed_seq INTEGER NOT NULL DEFAULT 0;

-- Existing rows take positions in their history order; the updated_at
-- trigger is off meanwhile so their timestamps stay as they were.
DROP TRIGGER llm_callbacks_touch_updated_at;
UPDATE llm_callbacks SET feed_seq = ordered.n
  FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM llm_callbacks) AS ordered
 WHERE ordered.id = llm_callbacks.id;
CREATE TRIGGER llm_callbacks_touch_updated_at
AFTER UPDATE ON llm_callbacks
FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE llm_callbacks
       SET updated_at = CAST(unixepoch('subsec') * 1000000 AS INTEGER)
     WHERE id = NEW.id;
END;

INSERT INTO feed_head (id, seq) SELECT 1, coalesce(max(feed_seq), 0) FROM llm_callbacks;

CREATE UNIQUE INDEX llm_callbacks_feed ON llm_callbacks (feed_seq);

-- The insert takes `feed_head.seq + 1`; this moves the head with it.
CREATE TRIGGER llm_callbacks_feed_head AFTER INSERT ON llm_callbacks
BEGIN
    UPDATE feed_head SET seq = NEW.feed_seq WHERE id = 1;
END;
