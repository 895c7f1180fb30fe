-- An upload token: minted by a login or a key (`session_id`, whose end ends it too) for a
-- browser or device that may only upload: a few uploads at most (`uploads_left`), each up to
-- `max_bytes`, with the output choices fixed (`options`), for minutes. Stored as the SHA-256 of
-- its secret; `prefix` is its public part.
CREATE TABLE upload_tokens (
    prefix VARCHAR(32) NOT NULL PRIMARY KEY,
    secret_hash VARCHAR(64) NOT NULL,
    user_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    uploads_left BIGINT NOT NULL,
    max_bytes BIGINT NULL,
    options TEXT NULL
);

-- The resumable uploads a token created: the only ones it may go on with.
CREATE TABLE upload_token_uploads (
    upload_id VARCHAR(36) NOT NULL PRIMARY KEY,
    prefix VARCHAR(32) NOT NULL
);
