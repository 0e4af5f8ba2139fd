DROP TRIGGER callback_count_delete;
DROP TRIGGER callback_count_insert;
DROP TABLE callback_count;
