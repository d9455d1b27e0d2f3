-- Issue 14: a broker's refusal of an order (insufficient buying power, market closed, bad keys
-- at Alpaca...) is told to the owner as its own notification type, `order_rejected`. On by
-- default like every other type, and switched on for existing accounts too: a new kind of
-- alert the owner never chose about should not start out silent.
ALTER TABLE notifications DROP CONSTRAINT notifications_event_type_check;
ALTER TABLE notifications
    ADD CONSTRAINT notifications_event_type_check CHECK (event_type IN (
        'circuit_breaker_triggered', 'circuit_breaker_resumed', 'risk_tier_changed',
        'emergency_liquidation', 'large_trade_pnl', 'daily_summary', 'weekly_digest',
        'order_rejected'));

ALTER TABLE trading_engine_config
    ALTER COLUMN notification_event_types SET DEFAULT ARRAY[
        'circuit_breaker_triggered', 'circuit_breaker_resumed', 'risk_tier_changed',
        'emergency_liquidation', 'large_trade_pnl', 'daily_summary', 'weekly_digest',
        'order_rejected'];
UPDATE trading_engine_config
    SET notification_event_types = array_append(notification_event_types, 'order_rejected')
    WHERE NOT ('order_rejected' = ANY (notification_event_types));
