-- Jobs whose video is imported from a link. `url` is the address as given, credentials and
-- all, read only by the import itself and cleared once the video is in storage; `shown_url`
-- is what may be shown of it (no user name, password or query).
CREATE TABLE job_imports (
    job_id VARCHAR(36) NOT NULL PRIMARY KEY,
    url TEXT NULL,
    shown_url TEXT NOT NULL,
    imported_at BIGINT NULL
);
