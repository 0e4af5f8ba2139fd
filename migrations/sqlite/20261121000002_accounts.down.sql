DROP TABLE login_failures;
DROP TABLE llm_callback_views;
DROP TABLE users;
