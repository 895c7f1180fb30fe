-- Portable between SQLite and MySQL/MariaDB: times are Unix milliseconds, flags are 0/1.
CREATE TABLE users (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    email VARCHAR(254) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    is_admin BIGINT NOT NULL DEFAULT 0,
    active BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

-- One login: the family of refresh tokens that descend from it. Revoking it ends every
-- access token issued in it and every job still waiting to validate one.
CREATE TABLE sessions (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Refresh tokens are stored as SHA-256 hashes; a token is used at most once.
CREATE TABLE refresh_tokens (
    token_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    session_id VARCHAR(64) NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE jobs (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    original_filename VARCHAR(1024) NOT NULL,
    source_key VARCHAR(512) NOT NULL,
    source_size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    mp3_key VARCHAR(512) NULL,
    mp3_size BIGINT NULL,
    duration_ms BIGINT NULL,
    completed_at BIGINT NULL,
    notified_at BIGINT NULL
);
CREATE INDEX jobs_user ON jobs (user_id);
