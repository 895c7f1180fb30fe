-- What a job's MP3 should be (bitrate mode, rate, channels, trim, loudness, preset), as the
-- JSON the workflow carries; NULL for the defaults, and for every job from before there were
-- choices.
ALTER TABLE jobs ADD COLUMN options TEXT NULL;
