-- Telegram (issue 17): a fourth notification channel, switched on by the owner like the
-- others; the bot token and the owner's chat ids are deployment secrets/settings from the
-- environment (STONKS_TELEGRAM_BOT_TOKEN, STONKS_TELEGRAM_CHAT_IDS), never stored here.
ALTER TABLE trading_engine_config
    ADD COLUMN telegram_enabled boolean NOT NULL DEFAULT false,
    ADD COLUMN telegram_rate_limit_per_hour integer NOT NULL DEFAULT 30
        CHECK (telegram_rate_limit_per_hour >= 0);

ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check;
ALTER TABLE notifications
    ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('sms', 'email', 'webhook', 'telegram'));
