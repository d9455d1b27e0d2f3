-- The risk-tier autopilot as a controller an owner can trust (issue 15; docs/decisions.md,
-- *Risk-tier autopilot*): its settings, and every close's verdict in the tier history.
--
-- risk_tier_rule: 'guarded' (default: evidence, a chance to trade, a way back up) or 'plan'
-- (the plan's rule literally). The three numbers tune the guarded rule and are ignored by 'plan'.
ALTER TABLE trading_engine_config
    ADD COLUMN risk_tier_rule              text    NOT NULL DEFAULT 'guarded'
        CHECK (risk_tier_rule IN ('guarded', 'plan')),
    ADD COLUMN risk_tier_min_trades        integer NOT NULL DEFAULT 10
        CHECK (risk_tier_min_trades BETWEEN 1 AND 1000),
    ADD COLUMN risk_tier_min_sessions      integer NOT NULL DEFAULT 5
        CHECK (risk_tier_min_sessions BETWEEN 0 AND 1000),
    ADD COLUMN risk_tier_recovery_sessions integer NOT NULL DEFAULT 20
        CHECK (risk_tier_recovery_sessions BETWEEN 0 AND 1000);

-- A row per verdict: 'changed' (the rows so far) or 'held' (previous_tier = new_tier), with the
-- reason in words; trigger_metrics keeps the figures used and the controller's memory after it.
ALTER TABLE risk_tier_history
    ADD COLUMN verdict text NOT NULL DEFAULT 'changed' CHECK (verdict IN ('changed', 'held')),
    ADD COLUMN reason  text NOT NULL DEFAULT '',
    ADD CONSTRAINT risk_tier_history_held_keeps_tier
        CHECK ((verdict = 'held') = (previous_tier = new_tier));
