-- `Idempotency-Key`s of uploads, per user: reserved (job_id NULL) while the upload runs, then
-- naming the job it started, with the uploaded file's SHA-256 and name to tell a retry of the
-- same upload from another upload under the same key. Kept 24 hours.
CREATE TABLE idempotency_keys (
    user_id VARCHAR(36) NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    job_id VARCHAR(36) NULL,
    fingerprint VARCHAR(64) NULL,
    filename VARCHAR(1024) NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
