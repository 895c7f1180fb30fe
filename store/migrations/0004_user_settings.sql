-- Whether a user gets the completion e-mail (a setting of their own, `PATCH /me`).
ALTER TABLE users ADD COLUMN completion_emails BIGINT NOT NULL DEFAULT 1;
