-- Backtester (issue 8). A run keeps, besides its headline metrics, what the rules did along
-- the way (decision counts by the check that refused, breaker trips, tier changes, reserve,
-- tax lots, positions left open) in `details`; a trade keeps its commissions.
ALTER TABLE backtest_runs ADD COLUMN details jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE backtest_trades ADD COLUMN fees numeric NOT NULL DEFAULT 0 CHECK (fees >= 0);
