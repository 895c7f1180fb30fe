-- How each job ended, for statistics and listings: NULL while it runs, then `completed`,
-- `failed` (with its failure type) or `cancelled`.
ALTER TABLE jobs ADD COLUMN outcome VARCHAR(16) NULL;
ALTER TABLE jobs ADD COLUMN failure_type VARCHAR(64) NULL;
ALTER TABLE jobs ADD COLUMN ended_at BIGINT NULL;
UPDATE jobs SET outcome = 'completed', ended_at = completed_at WHERE completed_at IS NOT NULL;

-- A user's jobs by time (statistics, listings) and everyone's jobs by time (per-day counts).
CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
CREATE INDEX jobs_created ON jobs (created_at);
