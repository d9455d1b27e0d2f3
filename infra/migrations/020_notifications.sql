-- Notifications (seed task 16.1, issue 7): where alerts go, a webhook rate limit, a log of
-- every delivery attempt, and which scheduled reports were already sent.
-- Secrets (SMTP password, Gmail tokens, webhook URL, AWS keys) are never stored here: they
-- come from the environment or a secrets file only.

-- Recipients are owner settings edited through the API, so they live beside the other
-- notification settings. NULL / empty means "not set here" (the STONKS_TRADING_SNS_* and
-- STONKS_TRADING_GMAIL_* environment values are used then).
ALTER TABLE trading_engine_config
    ADD COLUMN webhook_rate_limit_per_hour integer NOT NULL DEFAULT 30
        CHECK (webhook_rate_limit_per_hour >= 0),
    ADD COLUMN sms_phone_number text
        CHECK (sms_phone_number ~ '^\+[1-9][0-9]{6,14}$'),
    ADD COLUMN sns_topic_arn text
        -- Topic names are 1-256 characters; PostgreSQL's regex repetition stops at 255, so
        -- the length is checked apart.
        CHECK (sns_topic_arn ~ '^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+(\.fifo)?$'
               AND char_length(split_part(sns_topic_arn, ':', 6)) <= 256),
    ADD COLUMN email_sender text,
    ADD COLUMN email_recipients text[] NOT NULL DEFAULT '{}';

ALTER TABLE notifications
    ADD CONSTRAINT notifications_event_type_check CHECK (event_type IN (
        'circuit_breaker_triggered', 'circuit_breaker_resumed', 'risk_tier_changed',
        'emergency_liquidation', 'large_trade_pnl', 'daily_summary', 'weekly_digest'));
-- "How many did this channel deliver in this hour" (rate limits, dashboard).
CREATE INDEX notifications_channel_created_at_idx ON notifications (channel, created_at DESC);

-- One row per delivery attempt: `notifications` holds the message and its final outcome
-- (retry_count, last error), this table the outcome of each try, for the audit.
CREATE TABLE notification_attempts (
    id               bigserial   PRIMARY KEY,
    notification_id  bigint      NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt          integer     NOT NULL CHECK (attempt >= 1),
    outcome          text        NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    error_message    text,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    UNIQUE (notification_id, attempt),
    CHECK (outcome = 'delivered' OR error_message IS NOT NULL)
);

-- A scheduled report is claimed once per period ('2026-03-06' for a session's summary,
-- '2026-W10' for a week's digest), so a restart or a second engine process never sends it
-- twice: the primary key decides who sends.
CREATE TABLE notification_report_runs (
    kind        text        NOT NULL CHECK (kind IN ('daily_summary', 'weekly_digest')),
    period      text        NOT NULL,
    claimed_at  timestamptz NOT NULL,
    PRIMARY KEY (kind, period)
);
