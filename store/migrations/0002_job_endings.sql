-- How each job ended, for statistics and listings: NULL while it runs, then `completed`,
-- `failed` (with its failure type) or `cancelled`; and for completed jobs the time from
-- upload to MP3 stored, kept as a column so that it can be indexed.
ALTER TABLE jobs ADD COLUMN outcome VARCHAR(16) NULL;
ALTER TABLE jobs ADD COLUMN failure_type VARCHAR(64) NULL;
ALTER TABLE jobs ADD COLUMN ended_at BIGINT NULL;
ALTER TABLE jobs ADD COLUMN conversion_ms BIGINT NULL;
UPDATE jobs SET outcome = 'completed', ended_at = completed_at,
    conversion_ms = completed_at - created_at
    WHERE completed_at IS NOT NULL;

-- A user's jobs by time (their statistics, listings) and everyone's by time (per day).
CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
CREATE INDEX jobs_created ON jobs (created_at);
-- Everyone's statistics read these indexes alone, never the rows: counts and sums by
-- outcome, and the percentiles as ordered walks.
CREATE INDEX jobs_outcome_sizes ON jobs (outcome, source_size, conversion_ms);
CREATE INDEX jobs_source_size ON jobs (source_size);
CREATE INDEX jobs_conversion ON jobs (conversion_ms);
