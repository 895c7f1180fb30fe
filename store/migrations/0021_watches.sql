-- Watch folders: a prefix of one of a user's connections (or a folder of the workers' hosts
-- an operator allows, `directory`) whose new objects are converted as they appear, with the
-- watch's choices and destination. A watch is a login of its own (a row of `sessions`), so
-- its jobs are checked like any other and deleting it ends them.
CREATE TABLE watches (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(64) NOT NULL,
    name VARCHAR(255) NOT NULL,
    connection_id VARCHAR(36) NULL,
    directory TEXT NULL,
    prefix VARCHAR(512) NOT NULL,
    options TEXT NULL,
    export TEXT NULL,
    max_running INTEGER NOT NULL,
    interval_seconds INTEGER NOT NULL,
    max_bytes BIGINT NOT NULL,
    paused_at BIGINT NULL,
    created_at BIGINT NOT NULL,
    scanned_at BIGINT NULL,
    trouble TEXT NULL
);
CREATE INDEX watches_user ON watches (user_id);

-- Each object version a watch has taken: the job it made (its id derived from the watch, the
-- key and the version, so it is recorded once), and when the job's workflow was started.
CREATE TABLE watch_objects (
    job_id VARCHAR(36) NOT NULL PRIMARY KEY,
    watch_id VARCHAR(36) NOT NULL,
    object_key TEXT NOT NULL,
    version VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT NULL
);
CREATE INDEX watch_objects_watch ON watch_objects (watch_id, started_at);

-- An import from a file of a watched folder of the host.
ALTER TABLE job_imports ADD COLUMN host_path TEXT NULL;
