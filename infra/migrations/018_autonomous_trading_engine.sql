-- The autonomous trading engine's own state (seed task 1.1), plus the configuration-change
-- audit trail (seed task 20.2). Money, prices and quantities are `numeric` (exact); the
-- engine rounds money explicitly where it computes it, so nothing is rounded silently here.

CREATE TABLE trading_engine_config (
    id                                 smallint    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    enabled                            boolean     NOT NULL DEFAULT false,
    paused                             boolean     NOT NULL DEFAULT false,
    risk_tier                          text        NOT NULL DEFAULT 'moderate'
                                       CHECK (risk_tier IN ('conservative', 'moderate', 'aggressive')),
    -- Per-tier parameter overrides, keyed by tier name; absent keys use RISK_TIER_DEFAULTS.
    risk_tier_overrides                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    reserve_siphon_pct                 numeric     NOT NULL DEFAULT 0.20 CHECK (reserve_siphon_pct BETWEEN 0 AND 1),
    polling_interval_seconds           numeric     NOT NULL DEFAULT 30 CHECK (polling_interval_seconds > 0),
    stop_loss_check_interval_seconds   numeric     NOT NULL DEFAULT 300 CHECK (stop_loss_check_interval_seconds > 0),
    fast_stop_loss_interval_seconds    numeric     NOT NULL DEFAULT 60 CHECK (fast_stop_loss_interval_seconds > 0),
    gradual_entry_tranches             integer     NOT NULL DEFAULT 3 CHECK (gradual_entry_tranches >= 1),
    gradual_entry_interval_minutes     integer     NOT NULL DEFAULT 30 CHECK (gradual_entry_interval_minutes >= 1),
    gradual_entry_threshold_dollars    numeric     NOT NULL DEFAULT 30 CHECK (gradual_entry_threshold_dollars >= 0),
    absolute_position_cap              numeric     NOT NULL DEFAULT 2500 CHECK (absolute_position_cap > 0),
    active_pool_minimum                numeric     NOT NULL DEFAULT 100 CHECK (active_pool_minimum >= 0),
    max_open_positions                 integer     NOT NULL DEFAULT 10 CHECK (max_open_positions >= 1),
    fractional_shares                  boolean     NOT NULL DEFAULT false,
    daily_loss_limit_pct               numeric     NOT NULL DEFAULT 0.03 CHECK (daily_loss_limit_pct > 0 AND daily_loss_limit_pct <= 1),
    single_position_loss_pct           numeric     NOT NULL DEFAULT 0.08 CHECK (single_position_loss_pct > 0 AND single_position_loss_pct <= 1),
    ticker_cooldown_hours              numeric     NOT NULL DEFAULT 24 CHECK (ticker_cooldown_hours >= 0),
    volatility_stop_count              integer     NOT NULL DEFAULT 3 CHECK (volatility_stop_count >= 1),
    volatility_window_minutes          integer     NOT NULL DEFAULT 30 CHECK (volatility_window_minutes >= 1),
    volatility_halt_minutes            integer     NOT NULL DEFAULT 60 CHECK (volatility_halt_minutes >= 1),
    emergency_drawdown_threshold_pct   numeric     NOT NULL DEFAULT 0.20 CHECK (emergency_drawdown_threshold_pct > 0 AND emergency_drawdown_threshold_pct <= 1),
    reserve_high_water_pct             numeric     NOT NULL DEFAULT 0.30 CHECK (reserve_high_water_pct > 0 AND reserve_high_water_pct <= 1),
    correlation_reduce_threshold       numeric     NOT NULL DEFAULT 0.5 CHECK (correlation_reduce_threshold BETWEEN 0 AND 1),
    correlation_reject_threshold       numeric     NOT NULL DEFAULT 0.8 CHECK (correlation_reject_threshold BETWEEN 0 AND 1),
    earnings_reduce_sessions           integer     NOT NULL DEFAULT 3 CHECK (earnings_reduce_sessions >= 0),
    earnings_reject_sessions           integer     NOT NULL DEFAULT 1 CHECK (earnings_reject_sessions >= 0),
    micro_trading_enabled              boolean     NOT NULL DEFAULT false,
    micro_trading_interval_seconds     numeric     NOT NULL DEFAULT 60 CHECK (micro_trading_interval_seconds > 0),
    micro_trading_allocation_cap_pct   numeric     NOT NULL DEFAULT 0.03 CHECK (micro_trading_allocation_cap_pct > 0 AND micro_trading_allocation_cap_pct <= 1),
    micro_trading_max_daily            integer     NOT NULL DEFAULT 10 CHECK (micro_trading_max_daily >= 0),
    micro_trading_max_hold_minutes     integer     NOT NULL DEFAULT 120 CHECK (micro_trading_max_hold_minutes >= 1),
    sms_enabled                        boolean     NOT NULL DEFAULT false,
    email_enabled                      boolean     NOT NULL DEFAULT false,
    webhook_enabled                    boolean     NOT NULL DEFAULT false,
    sms_rate_limit_per_hour            integer     NOT NULL DEFAULT 10 CHECK (sms_rate_limit_per_hour >= 0),
    email_rate_limit_per_hour          integer     NOT NULL DEFAULT 20 CHECK (email_rate_limit_per_hour >= 0),
    notification_event_types           text[]      NOT NULL DEFAULT ARRAY[
        'circuit_breaker_triggered', 'circuit_breaker_resumed', 'risk_tier_changed',
        'emergency_liquidation', 'large_trade_pnl', 'daily_summary', 'weekly_digest'],
    large_trade_pnl_threshold          numeric     NOT NULL DEFAULT 100 CHECK (large_trade_pnl_threshold >= 0),
    daily_summary_time                 time        NOT NULL DEFAULT '16:30',
    weekly_digest_weekday              smallint    NOT NULL DEFAULT 4 CHECK (weekly_digest_weekday BETWEEN 0 AND 6),
    weekly_digest_time                 time        NOT NULL DEFAULT '17:00',
    created_at                         timestamptz NOT NULL DEFAULT now(),
    updated_at                         timestamptz NOT NULL DEFAULT now(),
    CHECK (correlation_reduce_threshold <= correlation_reject_threshold),
    CHECK (earnings_reject_sessions <= earnings_reduce_sessions)
);

CREATE TABLE trading_config_audit (
    id               bigserial   PRIMARY KEY,
    previous_config  jsonb       NOT NULL,
    new_config       jsonb       NOT NULL,
    change_source    text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trading_config_audit_created_at_idx ON trading_config_audit (created_at DESC);

CREATE TABLE reserve_pool_ledger (
    id             bigserial   PRIMARY KEY,
    amount         numeric     NOT NULL,
    balance_after  numeric     NOT NULL CHECK (balance_after >= 0),
    trigger_type   text        NOT NULL
                   CHECK (trigger_type IN ('profit_siphon', 'emergency_liquidation', 'manual_adjustment', 'initial')),
    reference_id   text,
    notes          text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reserve_pool_ledger_created_at_idx ON reserve_pool_ledger (created_at DESC);

CREATE TABLE risk_tier_history (
    id               bigserial   PRIMARY KEY,
    previous_tier    text        NOT NULL CHECK (previous_tier IN ('conservative', 'moderate', 'aggressive')),
    new_tier         text        NOT NULL CHECK (new_tier IN ('conservative', 'moderate', 'aggressive')),
    trigger_source   text        NOT NULL,
    trigger_metrics  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX risk_tier_history_created_at_idx ON risk_tier_history (created_at DESC);

CREATE TABLE circuit_breaker_events (
    id                bigserial   PRIMARY KEY,
    trigger_type      text        NOT NULL CHECK (trigger_type IN ('daily_loss', 'single_position', 'volatility', 'manual')),
    threshold_value   numeric     NOT NULL,
    actual_value      numeric     NOT NULL,
    ticker            text,
    reason            text        NOT NULL DEFAULT '',
    cooldown_expires  timestamptz,
    resolved_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX circuit_breaker_events_active_idx ON circuit_breaker_events (created_at DESC) WHERE resolved_at IS NULL;

CREATE TABLE trading_decisions (
    id                             uuid        PRIMARY KEY,
    recommendation_id              bigint      REFERENCES recommendations (id),
    decision                       text        NOT NULL CHECK (decision IN ('act', 'skip')),
    side                           text        NOT NULL CHECK (side IN ('buy', 'sell')),
    skip_reason                    text,
    ticker                         text        NOT NULL,
    computed_position_size         numeric     NOT NULL DEFAULT 0,
    computed_share_quantity        numeric     NOT NULL DEFAULT 0,
    risk_tier_at_decision          text        NOT NULL,
    portfolio_heat_at_decision     numeric     NOT NULL,
    active_pool_at_decision        numeric     NOT NULL,
    reserve_pool_at_decision       numeric     NOT NULL,
    circuit_breaker_status         text        NOT NULL,
    correlation_check_result       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    sector_exposure_check_result   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    earnings_proximity_flag        boolean     NOT NULL DEFAULT false,
    is_micro_trade                 boolean     NOT NULL DEFAULT false,
    decision_trace                 jsonb       NOT NULL,
    created_at                     timestamptz NOT NULL DEFAULT now(),
    CHECK (decision = 'act' OR skip_reason IS NOT NULL)
);
-- A recommendation is decided once, even if Redis (the fast dedupe) has lost its keys.
CREATE UNIQUE INDEX trading_decisions_recommendation_once_idx
    ON trading_decisions (recommendation_id) WHERE recommendation_id IS NOT NULL;
CREATE INDEX trading_decisions_ticker_idx ON trading_decisions (ticker, created_at DESC);
CREATE INDEX trading_decisions_decision_idx ON trading_decisions (decision, created_at DESC);
CREATE INDEX trading_decisions_created_at_idx ON trading_decisions (created_at DESC);

CREATE TABLE position_stop_levels (
    id                    bigserial   PRIMARY KEY,
    ticker                text        NOT NULL,
    entry_price           numeric     NOT NULL CHECK (entry_price > 0),
    stop_loss_price       numeric     NOT NULL,
    take_profit_price     numeric     NOT NULL,
    trailing_stop_active  boolean     NOT NULL DEFAULT false,
    atr_value             numeric     NOT NULL CHECK (atr_value >= 0),
    atr_multiplier        numeric     NOT NULL CHECK (atr_multiplier > 0),
    reward_risk_ratio     numeric     NOT NULL CHECK (reward_risk_ratio > 0),
    signal_confidence     numeric     NOT NULL CHECK (signal_confidence BETWEEN 0 AND 1),
    is_micro_trade        boolean     NOT NULL DEFAULT false,
    -- The decision (and its recommendation) that opened the position, for the trade history.
    opened_by_decision    uuid,
    recommendation_id     bigint,
    active                boolean     NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (stop_loss_price < take_profit_price)
);
-- One set of live levels per held ticker.
CREATE UNIQUE INDEX position_stop_levels_active_idx ON position_stop_levels (ticker) WHERE active;

CREATE TABLE portfolio_snapshots (
    id                    bigserial   PRIMARY KEY,
    snapshot_date         date        NOT NULL UNIQUE,
    portfolio_value       numeric     NOT NULL,
    active_pool           numeric     NOT NULL,
    reserve_pool          numeric     NOT NULL,
    daily_return          double precision NOT NULL DEFAULT 0,
    cumulative_return     double precision NOT NULL DEFAULT 0,
    unrealized_pnl        numeric     NOT NULL DEFAULT 0,
    realized_pnl          numeric     NOT NULL DEFAULT 0,
    win_count             integer     NOT NULL DEFAULT 0,
    loss_count            integer     NOT NULL DEFAULT 0,
    win_rate              double precision NOT NULL DEFAULT 0,
    sharpe_ratio          double precision NOT NULL DEFAULT 0,
    max_drawdown          double precision NOT NULL DEFAULT 0,
    current_drawdown_pct  double precision NOT NULL DEFAULT 0,
    portfolio_heat        numeric     NOT NULL DEFAULT 0,
    risk_tier             text        NOT NULL,
    positions             jsonb       NOT NULL DEFAULT '[]'::jsonb,
    metrics               jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX portfolio_snapshots_date_idx ON portfolio_snapshots (snapshot_date DESC);

CREATE TABLE backtest_runs (
    id               uuid        PRIMARY KEY,
    start_date       date        NOT NULL,
    end_date         date        NOT NULL,
    initial_capital  numeric     NOT NULL CHECK (initial_capital > 0),
    risk_tier        text        NOT NULL CHECK (risk_tier IN ('conservative', 'moderate', 'aggressive')),
    config           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status           text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    error_message    text,
    final_value      numeric,
    total_return     double precision,
    sharpe_ratio     double precision,
    max_drawdown     double precision,
    win_rate         double precision,
    profit_factor    double precision,
    trade_count      integer,
    data_gaps        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    equity_curve     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (start_date <= end_date)
);
CREATE INDEX backtest_runs_created_at_idx ON backtest_runs (created_at DESC);

CREATE TABLE backtest_trades (
    id                  bigserial   PRIMARY KEY,
    backtest_id         uuid        NOT NULL REFERENCES backtest_runs (id) ON DELETE CASCADE,
    ticker              text        NOT NULL,
    side                text        NOT NULL CHECK (side IN ('buy', 'sell')),
    entry_price         numeric     NOT NULL,
    exit_price          numeric,
    quantity            numeric     NOT NULL CHECK (quantity > 0),
    pnl                 numeric,
    entry_date          date        NOT NULL,
    exit_date           date,
    hold_duration_days  integer,
    exit_reason         text,
    recommendation_id   bigint
);
CREATE INDEX backtest_trades_backtest_idx ON backtest_trades (backtest_id);

-- One row per lot piece of the FIFO lot book (services/trading/tax_lots.py): a sale splits a lot
-- into the sold piece (closed or washed) and the rest (open), linked by parent_lot_id.
CREATE TABLE tax_lots (
    id                    bigint      PRIMARY KEY,
    ticker                text        NOT NULL,
    quantity              numeric     NOT NULL CHECK (quantity > 0),
    remaining_quantity    numeric     NOT NULL CHECK (remaining_quantity >= 0),
    cost_basis_per_share  numeric     NOT NULL CHECK (cost_basis_per_share >= 0),
    acquisition_date      date        NOT NULL,
    holding_period_start  date        NOT NULL,
    origin_lot_id         bigint      NOT NULL,
    first_share           numeric     NOT NULL DEFAULT 0,
    parent_lot_id         bigint,
    status                text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'washed')),
    closed_date           date,
    exit_price            numeric,
    realized_pnl          numeric,
    wash_sale_flag        boolean     NOT NULL DEFAULT false,
    wash_sale_details     jsonb,
    basis_adjustment      jsonb,
    order_id              bigint      REFERENCES broker_orders (id),
    created_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (remaining_quantity <= quantity),
    CHECK ((status = 'open') = (remaining_quantity > 0))
);
CREATE INDEX tax_lots_ticker_idx ON tax_lots (ticker, acquisition_date);
CREATE INDEX tax_lots_open_idx ON tax_lots (ticker, acquisition_date) WHERE status = 'open';

CREATE TABLE earnings_calendar (
    id             bigserial   PRIMARY KEY,
    ticker         text        NOT NULL,
    earnings_date  date        NOT NULL,
    source         text        NOT NULL,
    confirmed      boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ticker, earnings_date)
);
CREATE INDEX earnings_calendar_date_idx ON earnings_calendar (earnings_date);
CREATE INDEX earnings_calendar_ticker_idx ON earnings_calendar (ticker);

CREATE TABLE correlation_matrix_cache (
    id                        bigserial   PRIMARY KEY,
    ticker_a                  text        NOT NULL,
    ticker_b                  text        NOT NULL,
    correlation_coefficient   double precision NOT NULL CHECK (correlation_coefficient BETWEEN -1 AND 1),
    lookback_days             integer     NOT NULL CHECK (lookback_days > 0),
    computed_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ticker_a, ticker_b)
);

CREATE TABLE notifications (
    id             bigserial   PRIMARY KEY,
    channel        text        NOT NULL CHECK (channel IN ('sms', 'email', 'webhook')),
    event_type     text        NOT NULL,
    message        text        NOT NULL,
    delivery_status text       NOT NULL DEFAULT 'pending'
                   CHECK (delivery_status IN ('pending', 'delivered', 'failed', 'rate_limited')),
    retry_count    integer     NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    error_message  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    delivered_at   timestamptz
);
CREATE INDEX notifications_created_at_idx ON notifications (created_at DESC);
CREATE INDEX notifications_event_type_idx ON notifications (event_type);

INSERT INTO trading_engine_config (id) VALUES (1);
INSERT INTO reserve_pool_ledger (amount, balance_after, trigger_type, notes)
VALUES (0, 0, 'initial', 'Reserve Pool opened empty');
