-- An API key is a login of its own: a row of `sessions` (so revoking it ends it like a logout,
-- and a job it started checks it like any login) with a name, its scopes and the SHA-256 of
-- its secret. `prefix` is the public part of the key, its id in the API.
CREATE TABLE api_keys (
    session_id VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    prefix VARCHAR(32) NOT NULL UNIQUE,
    secret_hash VARCHAR(64) NOT NULL,
    name VARCHAR(100) NOT NULL,
    scopes VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NULL,
    last_used_at BIGINT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id);
