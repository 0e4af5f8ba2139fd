-- "Mark all viewed" as a watermark per user instead of a view row per
-- callback: a click writes one row whatever the number of callbacks.
--
-- A callback is viewed by a user when its feed position is at or below the
-- user's highest mark (the feed's head when they clicked: everything
-- committed by then, in commit order, on every node), or when it has a row
-- in llm_callback_views. Each mark keeps when it was set, for "viewed at";
-- the store keeps the last few marks of each user.
CREATE TABLE llm_callback_view_marks (
    user_id   uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq       bigint      NOT NULL,
    marked_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, seq)
);

-- Each view row carries its callback's feed position, so that the unread
-- count subtracts only the views above the user's mark (an index range).
ALTER TABLE llm_callback_views ADD COLUMN feed_seq bigint;
UPDATE llm_callback_views v SET feed_seq = c.feed_seq FROM llm_callbacks c WHERE c.id = v.callback_id;
CREATE INDEX llm_callback_views_admin_feed ON llm_callback_views (admin_user_id, feed_seq);

-- A view row inserted without its position (a node still running the
-- previous release during a rolling upgrade, a script) gets it here.
CREATE FUNCTION llm_callback_views_take_feed_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.feed_seq IS NULL THEN
        SELECT c.feed_seq INTO NEW.feed_seq FROM llm_callbacks c WHERE c.id = NEW.callback_id;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER llm_callback_views_take_feed_seq
BEFORE INSERT ON llm_callback_views
FOR EACH ROW EXECUTE FUNCTION llm_callback_views_take_feed_seq();
