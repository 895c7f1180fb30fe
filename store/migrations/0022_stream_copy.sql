-- When a job's output was made by copying the source's audio packets as they are (stream
-- copy), not by decoding and encoding them: NULL for an encoded output.
ALTER TABLE jobs ADD COLUMN copied_at BIGINT NULL;
