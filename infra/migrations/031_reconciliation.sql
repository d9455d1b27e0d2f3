-- Issue 14: reconciliation with a real broker, and protective stops resting at the broker
-- (docs/decisions.md, "Reconciliation" and "Stops resting at the broker").

-- Each reconciliation run, and what it found: every difference with the rule that resolved it.
CREATE TABLE reconciliation_runs (
    id                   bigserial   PRIMARY KEY,
    trigger              text        NOT NULL CHECK (trigger IN ('start', 'interval')),
    started_at           timestamptz NOT NULL,
    finished_at          timestamptz,
    status               text        NOT NULL CHECK (status IN ('agreed', 'differences', 'failed')),
    error                text,
    positions_compared   integer     NOT NULL DEFAULT 0,
    orders_compared      integer     NOT NULL DEFAULT 0,
    engine_cash          numeric,
    broker_cash          numeric,
    broker_buying_power  numeric,
    broker_equity        numeric
);
CREATE INDEX reconciliation_runs_started_idx ON reconciliation_runs (started_at DESC);

CREATE TABLE reconciliation_discrepancies (
    id                      bigserial   PRIMARY KEY,
    run_id                  bigint      NOT NULL REFERENCES reconciliation_runs (id),
    kind                    text        NOT NULL CHECK (kind IN ('position', 'missed_outcome',
                                'order_not_at_broker', 'unknown_order', 'order_still_open', 'cash')),
    ticker                  text,
    client_order_id         text,
    engine_figure           numeric     NOT NULL,
    broker_figure           numeric     NOT NULL,
    resolution              text        NOT NULL CHECK (resolution IN ('in_flight', 'queued', 'adopted', 'unexplained')),
    rule                    text        NOT NULL,
    -- The correcting entry written for it (a sale of shares gone at the broker), if any.
    correction_order_id     text,
    -- Unexplained ones pause new entries until the owner acknowledges them; adopted ones are
    -- told and stay open until acknowledged too (in-flight and queued ones settle by themselves).
    pauses                  boolean     NOT NULL,
    told                    boolean     NOT NULL,
    created_at              timestamptz NOT NULL,
    acknowledged_at         timestamptz,
    acknowledged_by         text
);
CREATE INDEX reconciliation_discrepancies_open_idx ON reconciliation_discrepancies (id)
    WHERE told AND acknowledged_at IS NULL;
CREATE INDEX reconciliation_discrepancies_run_idx ON reconciliation_discrepancies (run_id);

-- An unexplained difference pauses new entries through the circuit breaker (exits and stops
-- still run), with its own trigger type: no expiry, resolved by the owner's acknowledgement.
ALTER TABLE circuit_breaker_events DROP CONSTRAINT circuit_breaker_events_trigger_type_check;
ALTER TABLE circuit_breaker_events
    ADD CONSTRAINT circuit_breaker_events_trigger_type_check
    CHECK (trigger_type IN ('daily_loss', 'single_position', 'volatility', 'manual', 'reconciliation'));

-- The owner hears of every difference told: a new notification type, on for existing accounts
-- too (as order_rejected in migration 029).
ALTER TABLE notifications DROP CONSTRAINT notifications_event_type_check;
ALTER TABLE notifications
    ADD CONSTRAINT notifications_event_type_check CHECK (event_type IN (
        'circuit_breaker_triggered', 'circuit_breaker_resumed', 'risk_tier_changed',
        'emergency_liquidation', 'large_trade_pnl', 'daily_summary', 'weekly_digest',
        'order_rejected', 'reconciliation_discrepancy'));
ALTER TABLE trading_engine_config
    ALTER COLUMN notification_event_types SET DEFAULT ARRAY[
        'circuit_breaker_triggered', 'circuit_breaker_resumed', 'risk_tier_changed',
        'emergency_liquidation', 'large_trade_pnl', 'daily_summary', 'weekly_digest',
        'order_rejected', 'reconciliation_discrepancy'];
UPDATE trading_engine_config
    SET notification_event_types = array_append(notification_event_types, 'reconciliation_discrepancy')
    WHERE NOT ('reconciliation_discrepancy' = ANY (notification_event_types));

-- With a real broker the account's figures are the broker's: its buying power and equity
-- beside the cash it already holds (NULL with the paper broker).
ALTER TABLE broker_account ADD COLUMN buying_power numeric, ADD COLUMN equity numeric;

-- A protective stop resting at the broker is an order of ours like the others (its fill is
-- reported like any sale), with two more states: `cancelling` (we asked the broker to cancel
-- or replace it: a fill racing the request is still reported) and `cancelled` (ended by us,
-- nothing to report). `broker_order_ref` is the broker's own id for it (replace and cancel).
ALTER TABLE broker_orders DROP CONSTRAINT broker_orders_status_check;
ALTER TABLE broker_orders
    ADD CONSTRAINT broker_orders_status_check
    CHECK (status IN ('accepted', 'filled', 'rejected', 'cancelling', 'cancelled'));
ALTER TABLE broker_orders ADD COLUMN broker_order_ref text, ADD COLUMN stop_price numeric;
