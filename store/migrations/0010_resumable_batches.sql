-- A resumable upload may join a batch its client names (`batch_id` in its metadata), so that
-- files sent one by one are followed and downloaded together as a multipart batch is.
ALTER TABLE resumable_uploads ADD COLUMN batch_id VARCHAR(36) NULL;
