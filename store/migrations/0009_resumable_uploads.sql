-- Resumable (tus) uploads: one row from an upload's creation until it expires. Its bytes wait
-- in storage (a partial file, or an S3 multipart upload plus the tail too short to be a part);
-- the row says how far they go and who is appending now, so any gateway may take the next
-- request. `job_id` is chosen at creation and becomes the job when the last byte arrives
-- (`started_at`).
CREATE TABLE resumable_uploads (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    job_id VARCHAR(36) NOT NULL,
    filename VARCHAR(1024) NOT NULL,
    source_key VARCHAR(512) NOT NULL,
    upload_length BIGINT NOT NULL,
    upload_offset BIGINT NOT NULL,
    options TEXT NULL,
    callback_url TEXT NULL,
    idem_key VARCHAR(255) NULL,
    storage_id VARCHAR(1024) NULL,
    part_tags TEXT NULL,
    lock_holder VARCHAR(36) NULL,
    locked_until BIGINT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    started_at BIGINT NULL
);
CREATE UNIQUE INDEX resumable_uploads_key ON resumable_uploads (user_id, idem_key);
CREATE INDEX resumable_uploads_user ON resumable_uploads (user_id, started_at);
CREATE INDEX resumable_uploads_expiry ON resumable_uploads (expires_at);
