-- Back to one view row per callback: every callback under a mark becomes a
-- view row (viewed at the time of the first mark that covered it).
DROP TRIGGER llm_callback_views_feed_seq;
INSERT INTO llm_callback_views (callback_id, admin_user_id, viewed_at)
SELECT c.id, m.user_id, min(m.marked_at)
  FROM llm_callback_view_marks m JOIN llm_callbacks c ON c.feed_seq <= m.seq
 WHERE true
 GROUP BY c.id, m.user_id
ON CONFLICT (callback_id, admin_user_id) DO NOTHING;
DROP INDEX llm_callback_views_admin_feed;
ALTER TABLE llm_callback_views DROP COLUMN feed_seq;
DROP TABLE llm_callback_view_marks;
