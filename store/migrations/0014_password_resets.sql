-- A request to choose a new password. The mail's activity mints the secret and keeps only its
-- SHA-256 (`token_hash`); the link works once (`used_at`) and until `expires_at`.
CREATE TABLE password_resets (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    token_hash VARCHAR(64) NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);
