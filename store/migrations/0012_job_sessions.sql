-- The login a job was started in, so that a worker taking a queued job checks that login
-- again before it fetches anything (a job waits for room while its user may log out).
ALTER TABLE jobs ADD COLUMN session_id VARCHAR(64) NULL;
