DROP TABLE tower_sessions;
DROP TABLE api_tokens;
DROP TABLE login_failures;
DROP TABLE llm_callback_views;
DROP TABLE users;
