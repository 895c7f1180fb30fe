-- A source's audio tracks as its container describes them (JSON), kept when it has more than
-- one, so that /status can list them for choosing one (`audio_track`).
ALTER TABLE jobs ADD COLUMN audio_tracks TEXT NULL;
