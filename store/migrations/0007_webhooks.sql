-- Webhooks: the endpoints users register, the messages made for them (one per endpoint and
-- job event, its body fixed once so retries and replays send the same bytes), and every
-- attempt to deliver one.
CREATE TABLE webhook_endpoints (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    url VARCHAR(2048) NOT NULL,
    -- Comma-separated event names (`job.completed,job.failed`).
    events VARCHAR(255) NOT NULL,
    secret VARCHAR(128) NOT NULL,
    -- The secret before the last rotation, still signing beside the new one until the time.
    previous_secret VARCHAR(128) NULL,
    previous_secret_until BIGINT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    disabled_reason VARCHAR(255) NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id);

CREATE TABLE webhook_messages (
    id VARCHAR(40) NOT NULL PRIMARY KEY,
    endpoint_id VARCHAR(36) NOT NULL,
    job_id VARCHAR(36) NOT NULL,
    event VARCHAR(32) NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT NULL
);
CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    message_id VARCHAR(40) NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code BIGINT NULL,
    latency_ms BIGINT NOT NULL,
    error VARCHAR(512) NULL,
    replay BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, attempted_at);
