-- "Mark all viewed" as a watermark per user instead of a view row per
-- callback: a click writes one row whatever the number of callbacks, and
-- holds the write lock for no longer than any other small write.
--
-- A callback is viewed by a user when its feed position is at or below the
-- user's highest mark (the feed's head when they clicked: everything
-- committed by then, in commit order), or when it has a row in
-- llm_callback_views. Each mark keeps when it was set, for "viewed at";
-- the store keeps the last few marks of each user.
CREATE TABLE llm_callback_view_marks (
    user_id   BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    marked_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) STRICT, WITHOUT ROWID;

-- Each view row carries its callback's feed position, so that the unread
-- count subtracts only the views above the user's mark (an index range).
ALTER TABLE llm_callback_views ADD COLUMN feed_seq INTEGER;
UPDATE llm_callback_views
   SET feed_seq = (SELECT c.feed_seq FROM llm_callbacks c WHERE c.id = llm_callback_views.callback_id);
CREATE INDEX llm_callback_views_admin_feed ON llm_callback_views (admin_user_id, feed_seq);

-- A view row inserted without its position (a script, an older binary)
-- gets it here.
CREATE TRIGGER llm_callback_views_feed_seq
AFTER INSERT ON llm_callback_views
FOR EACH ROW WHEN NEW.feed_seq IS NULL
BEGIN
    UPDATE llm_callback_views
       SET feed_seq = (SELECT c.feed_seq FROM llm_callbacks c WHERE c.id = NEW.callback_id)
     WHERE callback_id = NEW.callback_id AND admin_user_id = NEW.admin_user_id;
END;
