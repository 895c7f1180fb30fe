-- Where a resumable upload's MP3 goes besides Audiomill's storage, checked at its creation
-- (JSON: a connection and key template, or a sealed upload link with what may be shown).
ALTER TABLE resumable_uploads ADD COLUMN export TEXT NULL;
