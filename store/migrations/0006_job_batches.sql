-- The batch a job was uploaded in: one upload with several files makes one job per file, all
-- with the same batch id; NULL for a job uploaded alone.
ALTER TABLE jobs ADD COLUMN batch_id VARCHAR(36) NULL;
CREATE INDEX jobs_by_batch ON jobs (batch_id);
