-- The login a job was started in, so that a worker taking a queued job checks that login
-- again before it fetches anything (a job waits for room while its user may log out); and
-- when a worker took it, so that a job nobody took yet is known to be queued without asking
-- the engine (a batch of a thousand jobs is mostly that).
ALTER TABLE jobs ADD COLUMN session_id VARCHAR(64) NULL;
ALTER TABLE jobs ADD COLUMN taken_at BIGINT NULL;
