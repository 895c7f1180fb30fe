-- Retention: when a job ends, when its MP3 (and the job) expire and when its uploaded video
-- does; the cleanup removes the objects and marks the times it did. An expired job's row stays
-- (its statistics count, and its download answers 410 Gone instead of 404), holding no
-- object.
ALTER TABLE jobs ADD COLUMN expires_at BIGINT NULL;
ALTER TABLE jobs ADD COLUMN source_expires_at BIGINT NULL;
ALTER TABLE jobs ADD COLUMN source_removed_at BIGINT NULL;
ALTER TABLE jobs ADD COLUMN expired_at BIGINT NULL;
CREATE INDEX jobs_expiry ON jobs (expired_at, expires_at);
CREATE INDEX jobs_source_expiry ON jobs (source_removed_at, source_expires_at);
CREATE INDEX webhook_messages_job ON webhook_messages (job_id);
CREATE INDEX idempotency_keys_job ON idempotency_keys (job_id);

-- Quotas: a user's own limits, where an admin set them (NULL: the deployment's defaults;
-- 0: none).
ALTER TABLE users ADD COLUMN quota_storage_bytes BIGINT NULL;
ALTER TABLE users ADD COLUMN quota_jobs_per_day BIGINT NULL;

-- Jobs started per user and UTC day, counted when each starts: deleting jobs gives none back.
CREATE TABLE job_starts (
    user_id VARCHAR(36) NOT NULL,
    day BIGINT NOT NULL,
    jobs BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);

-- One-off endpoints, from an upload's `callback_url`: told of that upload's jobs only (the job,
-- or the batch, this names), listed nowhere, removed with the last of those jobs.
ALTER TABLE webhook_endpoints ADD COLUMN one_off_for VARCHAR(36) NULL;
CREATE INDEX webhook_endpoints_one_off ON webhook_endpoints (one_off_for);
