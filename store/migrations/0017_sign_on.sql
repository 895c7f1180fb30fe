-- Single sign-on. A sign-in begun at the OpenID provider waits here until the provider sends
-- the browser back: kept by the SHA-256 of its `state`, with the nonce and PKCE verifier the
-- answer is checked with; taken once, until `expires_at`.
CREATE TABLE sign_on_attempts (
    state_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    nonce VARCHAR(128) NOT NULL,
    pkce_verifier VARCHAR(128) NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The provider's person (issuer and subject) an account belongs to.
CREATE TABLE sign_on_identities (
    issuer VARCHAR(255) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    user_id VARCHAR(36) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX sign_on_identities_user ON sign_on_identities (user_id);

-- An admin lets the next single sign-on with this account's verified address take it over
-- (an account made with a password is never taken by an address alone).
ALTER TABLE users ADD COLUMN sign_on_link BIGINT NOT NULL DEFAULT 0;
