-- An admin's invitation to make an account with `email`. As with password resets, the mail's
-- activity mints the secret and only its SHA-256 is kept; the link works once, until
-- `expires_at`.
CREATE TABLE invitations (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    email VARCHAR(254) NOT NULL,
    admin BIGINT NOT NULL DEFAULT 0,
    invited_by VARCHAR(36) NOT NULL,
    token_hash VARCHAR(64) NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL
);
CREATE INDEX invitations_email ON invitations (email);
