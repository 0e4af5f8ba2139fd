-- How many callbacks exist, kept by triggers, so the unread count of every
-- history page is a lookup instead of a count over the whole table.
CREATE TABLE callback_count (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    total INTEGER NOT NULL
) STRICT;

INSERT INTO callback_count (id, total) SELECT 1, count(*) FROM llm_callbacks;

CREATE TRIGGER callback_count_insert AFTER INSERT ON llm_callbacks
BEGIN
    UPDATE callback_count SET total = total + 1 WHERE id = 1;
END;

CREATE TRIGGER callback_count_delete AFTER DELETE ON llm_callbacks
BEGIN
    UPDATE callback_count SET total = total - 1 WHERE id = 1;
END;
