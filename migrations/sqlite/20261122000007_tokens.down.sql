DROP INDEX api_tokens_user_name;
DROP TABLE api_tokens;
