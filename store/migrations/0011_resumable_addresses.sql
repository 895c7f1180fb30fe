-- The address a resumable upload was created from, so that unfinished uploads are limited
-- per address beside per account (an address's accounts cannot together hold more).
ALTER TABLE resumable_uploads ADD COLUMN client_addr VARCHAR(64) NULL;
CREATE INDEX resumable_uploads_address ON resumable_uploads (client_addr, started_at);
