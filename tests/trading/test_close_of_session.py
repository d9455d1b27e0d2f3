"""The close of a session, the one rule live and backtest call (issue 13; seed tasks 7.1, 11.1):
emergency release, then the tier change, on the close's own figures; micro-trades are left
out of the tier's win rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import RiskTierName, RiskTierRule
from services.trading.core.close_of_session import CloseFigures, close_session
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import ClosedTrade, ReservePoolState
from services.trading.core.risk_tier_controller import RiskTierSettings

D = Decimal
NOW = datetime(2024, 6, 3, 20, 0, tzinfo=UTC)
# The plan's rule, literally (still a setting); the guarded rule's own tests are in
# test_risk_tier_guarded.py.
SETTINGS = EngineSettings(enabled=True, tier_rules=RiskTierSettings(rule=RiskTierRule.PLAN))
TIERS = list(RiskTierName)


def trade(pnl: int, *, micro: bool = False, days_ago: int = 1) -> ClosedTrade:
    exit_at = NOW - timedelta(days=days_ago)
    return ClosedTrade("XYZ", D(100), D(100 + pnl), D(1), exit_at - timedelta(hours=1), exit_at, 1, micro)


def test_the_emergency_tier_wins_and_the_reserve_is_released() -> None:
    # Drawdown 25% > the 20% threshold: the whole reserve goes to the Active Pool and the tier
    # is conservative for this close, even with a record that would otherwise only step down.
    figures = CloseFigures(D(75_000), 0.25, ReservePoolState(D(5_000)))
    outcome = close_session(figures, [trade(10)] * 5, RiskTierName.AGGRESSIVE, NOW, SETTINGS)
    assert outcome.release.entry is not None and outcome.release.entry.amount == D(-5_000)
    assert outcome.release.state.balance == 0
    assert outcome.tier_change is not None
    assert (outcome.tier_change.new_tier, outcome.tier_change.trigger_source) == (
        RiskTierName.CONSERVATIVE,
        "emergency_liquidation",
    )


def test_already_conservative_the_emergency_changes_no_tier() -> None:
    figures = CloseFigures(D(75_000), 0.25, ReservePoolState(D(5_000)))
    outcome = close_session(figures, [], RiskTierName.CONSERVATIVE, NOW, SETTINGS)
    assert outcome.tier_change is None and outcome.release.entry is not None


def test_micro_trades_are_left_out_of_the_tiers_win_rate() -> None:
    # Standard trades all won; the micro-trades all lost. Counted together the win rate would
    # be 3/8 and the tier would step down; the standard record alone keeps it.
    trades = [trade(10)] * 3 + [trade(-5, micro=True)] * 5
    figures = CloseFigures(D(100_000), 0.01, ReservePoolState(D(1_000)))
    assert close_session(figures, trades, RiskTierName.MODERATE, NOW, SETTINGS).tier_change is None
    standard_losers = [trade(10)] * 3 + [trade(-5)] * 5
    change = close_session(figures, standard_losers, RiskTierName.MODERATE, NOW, SETTINGS).tier_change
    assert change is not None and change.new_tier is RiskTierName.CONSERVATIVE


trades = st.lists(
    st.builds(trade, st.integers(-20, 20), micro=st.booleans(), days_ago=st.integers(0, 60)), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(
    trades,
    st.sampled_from(TIERS),
    st.integers(0, 400).map(lambda bp: bp / 1000),
    st.integers(0, 40_000),
    st.integers(1_000, 200_000),
)
def test_property_the_tier_changes_on_the_closes_own_figures(closed, tier, drawdown, reserve, value) -> None:
    figures = CloseFigures(D(value), drawdown, ReservePoolState(D(reserve)))
    outcome = close_session(figures, closed, tier, NOW, SETTINGS)
    new = tier if outcome.tier_change is None else outcome.tier_change.new_tier
    if D(str(drawdown)) > SETTINGS.reserve.emergency_drawdown_threshold_pct:
        # The emergency rule wins: conservative, the whole reserve released, nothing else.
        assert new is RiskTierName.CONSERVATIVE
        assert outcome.release.state.balance == 0
        return
    assert outcome.release.entry is None
    # Otherwise the contract's rule (docs/contracts.md section 5), stated here on its own: standard trades of the last 30 days;
    # win rate < 40% or drawdown > 15% steps down; > 55% with reserve > 20% and drawdown < 5%
    # steps up; never past either end.
    recent = [t for t in closed if not t.is_micro_trade and t.exit_at >= NOW - timedelta(days=30)]
    rate = sum(t.exit_price > t.entry_price for t in recent) / len(recent) if recent else None
    order = [RiskTierName.CONSERVATIVE, RiskTierName.MODERATE, RiskTierName.AGGRESSIVE]
    i = order.index(tier)
    if (rate is not None and rate < 0.40) or drawdown > 0.15:
        expected = order[max(i - 1, 0)]
    elif rate is not None and rate > 0.55 and reserve / value > 0.20 and drawdown < 0.05:
        expected = order[min(i + 1, 2)]
    else:
        expected = tier
    assert new is expected
