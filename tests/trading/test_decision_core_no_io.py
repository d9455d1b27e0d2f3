"""The decision core does no network I/O (issue #3 "done when"; STYLE principle 1).

A fresh interpreter with socket creation disabled imports every rule module and runs each
once; any attempt to open a connection (database, Redis, HTTP) raises and fails the test.
"""

from __future__ import annotations

from tests.trading.no_network import run_without_network

SCRIPT = """
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal as D

    from services.shared.schemas import RiskTierName
    from services.trading.core import (circuit_breaker, gradual_entry, position_sizer, reserve_pool,
                                       risk_tier_controller, stop_loss_manager, trading_window)
    from services.trading.core.models import (RISK_TIER_DEFAULTS, CircuitBreakerState, OpenPosition,
                                         PortfolioState, ReservePoolState)

    now = datetime(2024, 6, 3, 15, 0, tzinfo=timezone.utc)

    class NoCorrelation:
        def get_portfolio_correlation(self, candidate, positions):
            return 0.0

    held = OpenPosition("AAA", D(10), D(100), D(95), "Tech", D(90), D(120), D("0.7"))
    portfolio = PortfolioState(positions=(held,), cash=D(10000), reserve_pool=D(500))
    tier = RISK_TIER_DEFAULTS[RiskTierName.MODERATE]
    result = position_sizer.PositionSizer(NoCorrelation()).compute(
        position_sizer.SizingRequest("NEW", "Health", D("0.8"), D(25), D(2), 5), portfolio, tier)
    assert not result.rejected, result
    bars = [stop_loss_manager.Bar(D(101), D(99), D(100))] * 15
    atr = stop_loss_manager.average_true_range(bars)
    levels = stop_loss_manager.compute_initial_levels(D(25), atr, D(2), D(2), now)
    stop_loss_manager.check_price_crossing("NEW", levels, D(20))
    stop_loss_manager.check_price_unavailable("NEW", now - timedelta(hours=1), now)
    stop_loss_manager.tighten_for_heat([held], portfolio.total_value, D("0.01"))
    reserve_pool.siphon_profit(ReservePoolState(), D(100), now)
    reserve_pool.emergency_release(ReservePoolState(D(100)), D("0.3"), now)
    circuit_breaker.check_daily_loss(CircuitBreakerState(), D(100), D(90), now)
    circuit_breaker.check_single_position(CircuitBreakerState(), held, now)
    risk_tier_controller.evaluate_risk_tier(RiskTierName.MODERATE, win_rate=0.3, drawdown=0.0,
                                            reserve_pct=0.0, now=now)
    trading_window.is_within_trading_window(now)
    trading_window.next_window_open(now)
    trading_window.sessions_until(now, now.date())
    gradual_entry.plan_entry("d", "NEW", result.share_quantity, D(25), portfolio.active_pool, now)
    from services.trading.core import rapid_move
    points = [rapid_move.PricePoint(now - timedelta(minutes=10), D(100)), rapid_move.PricePoint(now, D(94))]
    assert rapid_move.detect_rapid_move("AAA", points, now) is not None
    # The whole pre-trade pipeline the engine, demo and backtester share.
    import uuid
    from services.trading.core import decision, engine_settings
    from services.trading.core.models import Recommendation
    rec = Recommendation(1, "NEW", "buy", 0.8, "paper_eligible", "20d", "t", now)
    ctx = decision.DecisionContext(PortfolioState((), D(10000)), CircuitBreakerState(), engine_settings.EngineSettings(enabled=True),
                                   NoCorrelation())
    market = decision.MarketView(True, "Health", D(25), D("1.2"), price_as_of=now)
    outcome = decision.decide(rec, market, ctx, now=now, decision_id=uuid.uuid4())
    assert outcome.acted, outcome.decision.skip_reason
    print("no-io-ok")
"""


def test_decision_core_imports_and_runs_with_network_disabled() -> None:
    run_without_network(SCRIPT)
