-- The engine's own bookkeeping (seed tasks 13 and 25): the order outbox that makes "decided"
-- and "sent" one atomic fact, the broker outcomes already applied, closed trades, and the
-- little state the loop keeps between ticks. Plus a NOTIFY on new recommendations so the
-- loop wakes within milliseconds instead of at the next poll.

CREATE TABLE order_outbox (
    id                    bigserial   PRIMARY KEY,
    job_id                uuid        NOT NULL UNIQUE,
    client_order_id       text        NOT NULL UNIQUE,
    trading_decision_id   uuid        NOT NULL REFERENCES trading_decisions (id),
    ticker                text        NOT NULL,
    side                  text        NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity              numeric     NOT NULL CHECK (quantity > 0),
    reason                text        NOT NULL,
    tranche_index         integer     NOT NULL DEFAULT 0,
    tranche_count         integer     NOT NULL DEFAULT 1,
    -- How to place the stop once the entry fills: ATR, multiplier, reward/risk, confidence.
    stop_plan             jsonb,
    payload               jsonb       NOT NULL,
    not_before            timestamptz NOT NULL,
    delivered_at          timestamptz,
    cancelled_at          timestamptz,
    cancel_reason         text,
    broker_status         text        CHECK (broker_status IN ('filled', 'rejected')),
    broker_reason         text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (cancelled_at IS NULL OR cancel_reason IS NOT NULL)
);
CREATE INDEX order_outbox_pending_idx ON order_outbox (not_before)
    WHERE delivered_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX order_outbox_open_idx ON order_outbox (ticker)
    WHERE broker_status IS NULL AND cancelled_at IS NULL;
CREATE INDEX order_outbox_decision_idx ON order_outbox (trading_decision_id);

-- One broker outcome per order, applied once however often the broker reports it.
CREATE TABLE applied_fills (
    client_order_id  text        PRIMARY KEY,
    status           text        NOT NULL CHECK (status IN ('filled', 'rejected')),
    ticker           text        NOT NULL,
    side             text        NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity         numeric     NOT NULL,
    price            numeric,
    fee              numeric     NOT NULL DEFAULT 0,
    reported_at      timestamptz NOT NULL,
    applied_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE closed_trades (
    id                   bigserial   PRIMARY KEY,
    ticker               text        NOT NULL,
    quantity             numeric     NOT NULL CHECK (quantity > 0),
    entry_price          numeric     NOT NULL,
    exit_price           numeric     NOT NULL,
    fees                 numeric     NOT NULL DEFAULT 0,
    pnl                  numeric     NOT NULL,
    entry_at             timestamptz NOT NULL,
    exit_at              timestamptz NOT NULL,
    exit_reason          text        NOT NULL,
    recommendation_id    bigint,
    trading_decision_id  uuid,
    is_micro_trade       boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX closed_trades_exit_idx ON closed_trades (exit_at DESC);
CREATE INDEX closed_trades_ticker_idx ON closed_trades (ticker, exit_at DESC);

CREATE TABLE engine_state (
    id                        smallint    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    -- Recommendations generated before the engine first started are history, not orders.
    epoch                     timestamptz NOT NULL,
    session_date              date,
    start_of_day_value        numeric,
    last_stop_check_at        timestamptz,
    last_close_processed      date,
    last_rebalance_week       text,
    last_daily_summary        date,
    last_weekly_digest        text,
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION notify_new_recommendation() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('stonks_recommendations', NEW.id::text);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER recommendations_notify_engine
    AFTER INSERT ON recommendations
    FOR EACH ROW EXECUTE FUNCTION notify_new_recommendation();

-- Faults the loop met and survived (a server restarting, a bad message), for the dashboard.
CREATE TABLE engine_faults (
    id           bigserial   PRIMARY KEY,
    component    text        NOT NULL,
    error        text        NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX engine_faults_occurred_at_idx ON engine_faults (occurred_at DESC);
