-- Tables the trading engine reads from the upstream signal pipeline and the broker service
-- (SPEC section 3). In the full stonks-oracle system they already exist; every statement is
-- IF NOT EXISTS so this file is harmless there and makes this repository run on its own.

CREATE TABLE IF NOT EXISTS tickers (
    ticker      text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    sector      text NOT NULL DEFAULT 'Unknown',
    industry    text NOT NULL DEFAULT 'Unknown'
);

CREATE TABLE IF NOT EXISTS price_bars (
    ticker      text        NOT NULL REFERENCES tickers (ticker),
    interval    text        NOT NULL CHECK (interval IN ('1d', '5m', '1m')),
    ts          timestamptz NOT NULL,
    open        numeric     NOT NULL CHECK (open > 0),
    high        numeric     NOT NULL CHECK (high > 0),
    low         numeric     NOT NULL CHECK (low > 0),
    close       numeric     NOT NULL CHECK (close > 0),
    volume      bigint      NOT NULL CHECK (volume >= 0),
    PRIMARY KEY (ticker, interval, ts),
    CHECK (low <= high AND low <= open AND low <= close AND high >= open AND high >= close)
);

CREATE TABLE IF NOT EXISTS recommendations (
    id            bigserial   PRIMARY KEY,
    ticker        text        NOT NULL,
    action        text        NOT NULL,
    -- double precision on purpose: the upstream pipeline may write NaN or out-of-range
    -- values, and the engine must see them to skip them with a reason (SPEC section 3).
    confidence    double precision NOT NULL,
    mode          text        NOT NULL DEFAULT 'research',
    trend_window  text        NOT NULL DEFAULT '5d',
    thesis        text        NOT NULL DEFAULT '',
    generated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS recommendations_generated_at_idx ON recommendations (generated_at);

CREATE TABLE IF NOT EXISTS macro_events (
    id          bigserial   PRIMARY KEY,
    severity    text        NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    title       text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz
);
CREATE INDEX IF NOT EXISTS macro_events_window_idx ON macro_events (starts_at, ends_at);

CREATE TABLE IF NOT EXISTS broker_account (
    id          smallint    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    cash        numeric     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS broker_orders (
    id                   bigserial   PRIMARY KEY,
    client_order_id      text        NOT NULL UNIQUE,
    job_id               uuid        NOT NULL,
    trading_decision_id  uuid,
    ticker               text        NOT NULL,
    side                 text        NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity             numeric     NOT NULL CHECK (quantity > 0),
    order_type           text        NOT NULL DEFAULT 'market',
    time_in_force        text        NOT NULL DEFAULT 'day',
    mode                 text        NOT NULL DEFAULT 'paper',
    reason               text        NOT NULL,
    status               text        NOT NULL CHECK (status IN ('accepted', 'filled', 'rejected')),
    reject_reason        text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS broker_fills (
    id               bigserial   PRIMARY KEY,
    order_id         bigint      NOT NULL REFERENCES broker_orders (id),
    client_order_id  text        NOT NULL,
    ticker           text        NOT NULL,
    side             text        NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity         numeric     NOT NULL CHECK (quantity > 0),
    price            numeric     NOT NULL CHECK (price > 0),
    fee              numeric     NOT NULL DEFAULT 0,
    filled_at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS broker_fills_ticker_idx ON broker_fills (ticker, filled_at);
