-- Users' own S3-compatible storage. The secret key is sealed (AES-256-GCM, with a key from
-- CONNECTION_SECRET_KEY) and never shown again.
CREATE TABLE connections (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    endpoint VARCHAR(2048) NULL,
    region VARCHAR(64) NOT NULL,
    bucket VARCHAR(63) NOT NULL,
    prefix VARCHAR(512) NOT NULL,
    access_key_id VARCHAR(255) NOT NULL,
    sealed_secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX connections_user ON connections (user_id);

-- An import from a connection's bucket instead of a link.
ALTER TABLE job_imports ADD COLUMN connection_id VARCHAR(36) NULL;
ALTER TABLE job_imports ADD COLUMN object_key TEXT NULL;

-- Where a job's MP3 is written besides Audiomill's storage: a connection's bucket at a key
-- template, or a presigned PUT URL (sealed, as it carries a signature).
CREATE TABLE job_exports (
    job_id VARCHAR(36) NOT NULL PRIMARY KEY,
    connection_id VARCHAR(36) NULL,
    key_template TEXT NULL,
    sealed_put_url TEXT NULL,
    shown TEXT NOT NULL,
    exported_key TEXT NULL,
    exported_at BIGINT NULL
);
