"""Risk tier auto-adjustment (seed task 9, property 12; docs/contracts.md section 5)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import RiskTierName
from services.trading.core.models import PerformanceMetrics
from services.trading.core.risk_tier_controller import evaluate_from_metrics, evaluate_risk_tier

NOW = datetime(2024, 6, 3, 20, 0, tzinfo=UTC)
ORDER = [RiskTierName.CONSERVATIVE, RiskTierName.MODERATE, RiskTierName.AGGRESSIVE]
fractions = st.floats(min_value=0, max_value=1, allow_nan=False)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ORDER), st.one_of(st.none(), fractions), fractions, fractions)
def test_property_12_risk_tier_auto_adjustment(
    tier: RiskTierName, win_rate: float | None, drawdown: float, reserve_pct: float
) -> None:
    """Property 12: down one level when win rate < 40% or drawdown > 15%; up one level when
    win rate > 55% and reserve > 20% and drawdown < 5%; otherwise no change; never past the
    conservative or aggressive bounds."""
    change = evaluate_risk_tier(tier, win_rate=win_rate, drawdown=drawdown, reserve_pct=reserve_pct, now=NOW)
    level = ORDER.index(tier)
    down = (win_rate is not None and win_rate < 0.40) or drawdown > 0.15
    up = win_rate is not None and win_rate > 0.55 and reserve_pct > 0.20 and drawdown < 0.05
    expected = level - 1 if down else level + 1 if up else level
    expected = min(max(expected, 0), 2)
    if expected == level:
        assert change is None
        return
    assert change is not None
    assert change.previous_tier is tier and change.new_tier is ORDER[expected]
    assert change.reason and change.trigger_metrics == {
        "win_rate": win_rate,
        "drawdown": drawdown,
        "reserve_pct": reserve_pct,
    }
    assert change.changed_at == NOW


def test_boundaries_are_strict() -> None:
    moderate = RiskTierName.MODERATE
    assert evaluate_risk_tier(moderate, win_rate=0.40, drawdown=0.15, reserve_pct=0.0, now=NOW) is None
    assert evaluate_risk_tier(moderate, win_rate=0.55, drawdown=0.0, reserve_pct=0.9, now=NOW) is None
    assert evaluate_risk_tier(moderate, win_rate=0.9, drawdown=0.05, reserve_pct=0.9, now=NOW) is None
    assert evaluate_risk_tier(moderate, win_rate=0.9, drawdown=0.0, reserve_pct=0.20, now=NOW) is None
    up = evaluate_risk_tier(moderate, win_rate=0.56, drawdown=0.049, reserve_pct=0.21, now=NOW)
    assert up is not None and up.new_tier is RiskTierName.AGGRESSIVE


def test_no_trades_is_not_a_losing_record() -> None:
    assert (
        evaluate_risk_tier(RiskTierName.MODERATE, win_rate=None, drawdown=0.0, reserve_pct=0.5, now=NOW)
        is None
    )
    down = evaluate_risk_tier(RiskTierName.MODERATE, win_rate=None, drawdown=0.2, reserve_pct=0.5, now=NOW)
    assert down is not None and down.new_tier is RiskTierName.CONSERVATIVE


def test_evaluate_from_metrics_uses_reserve_share_and_current_drawdown() -> None:
    d = Decimal
    metrics = PerformanceMetrics(
        total_portfolio_value=d("10000"),
        active_pool=d("7500"),
        reserve_pool=d("2500"),
        unrealized_pnl=d(0),
        realized_pnl=d(0),
        daily_pnl=d(0),
        trade_count=10,
        win_count=6,
        loss_count=4,
        win_rate=0.6,
        avg_win=d(0),
        avg_loss=d(0),
        profit_factor=1.5,
        sharpe_ratio=1.0,
        max_drawdown=0.3,
        current_drawdown=0.01,
        portfolio_heat=d(0),
        computed_at=NOW,
    )
    change = evaluate_from_metrics(RiskTierName.MODERATE, metrics, trailing_win_rate=0.6, now=NOW)
    assert change is not None and change.new_tier is RiskTierName.AGGRESSIVE
    assert change.trigger_metrics["reserve_pct"] == 0.25
