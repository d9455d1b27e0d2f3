"""Reserve Pool rules (seed task 7, properties 5, 6, 8; docs/contracts.md sections 5-6)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import ReservePoolTriggerType, RiskTierName
from services.trading.core.models import OpenPosition, PortfolioState, ReservePoolState
from services.trading.core.reserve_pool import (
    ReserveSettings,
    compute_active_pool,
    emergency_crossed,
    emergency_release,
    reserve_high_water,
    siphon_profit,
)

D = Decimal
NOW = datetime(2024, 6, 3, 20, 0, tzinfo=UTC)


def decimals(lo: str, hi: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(lo), max_value=D(hi), places=places, allow_nan=False, allow_infinity=False)


money = decimals("0", "1000000", 2)
states = st.builds(ReservePoolState, balance=money, total_deposits=money, total_withdrawals=money)


@settings(max_examples=200, deadline=None)
@given(decimals("-1000000", "1000000", 2), money, decimals("0", "1", 2))
def test_property_5_active_pool_is_total_minus_reserve(
    total: Decimal, reserve: Decimal, cash_share: Decimal
) -> None:
    """Property 5: Active Pool = total portfolio value - Reserve Pool balance, both for the
    rule function and for the portfolio value the sizer reads."""
    assert compute_active_pool(total, reserve) == total - reserve
    cash = (total * cash_share).quantize(D("0.01"))
    holding = OpenPosition("H", D(1), D(1), total - cash, "Tech", D(0), D(2), D("0.7"))
    portfolio = PortfolioState(positions=(holding,), cash=cash, reserve_pool=reserve)
    assert portfolio.total_value == total
    assert portfolio.active_pool == total - reserve


@settings(max_examples=300, deadline=None)
@given(states, decimals("-50000", "50000", 2), decimals("0", "1", 2))
def test_property_6_reserve_siphon(state: ReservePoolState, profit: Decimal, pct: Decimal) -> None:
    """Property 6: a profitable close moves profit * siphon_pct; balance_after = previous +
    transferred; losses and break-evens move nothing."""
    update = siphon_profit(
        state, profit, NOW, ReserveSettings(reserve_siphon_pct=pct), reference_id="order-1"
    )
    transferred = profit * pct
    if profit <= 0 or transferred == 0:
        assert update.entry is None and update.state == state and update.reason
        return
    assert update.entry is not None
    assert update.entry.amount == transferred
    assert update.entry.balance_after == state.balance + transferred == update.state.balance
    assert update.entry.trigger_type is ReservePoolTriggerType.PROFIT_SIPHON
    assert update.entry.reference_id == "order-1" and update.entry.notes
    assert update.state.total_deposits == state.total_deposits + transferred
    assert update.new_risk_tier is None


@settings(max_examples=300, deadline=None)
@given(states, decimals("0", "1", 3), decimals("0.05", "0.5", 2))
def test_property_8_emergency_drawdown_releases_reserve(
    state: ReservePoolState, drawdown: Decimal, threshold: Decimal
) -> None:
    """Property 8: beyond the emergency threshold the whole reserve goes to the Active Pool
    and the tier becomes conservative; at or below it nothing changes."""
    update = emergency_release(
        state, drawdown, NOW, ReserveSettings(emergency_drawdown_threshold_pct=threshold)
    )
    if drawdown <= threshold:
        assert update.state == state and update.entry is None and update.new_risk_tier is None
        return
    assert update.new_risk_tier is RiskTierName.CONSERVATIVE
    assert update.state.balance == 0
    assert update.state.total_withdrawals == state.total_withdrawals + state.balance
    total = D("2000000")
    assert (
        compute_active_pool(total, update.state.balance)
        == compute_active_pool(total, state.balance) + state.balance
    )
    if state.balance > 0:
        assert update.entry is not None
        assert update.entry.amount == -state.balance and update.entry.balance_after == 0
        assert update.entry.trigger_type is ReservePoolTriggerType.EMERGENCY_LIQUIDATION
    else:
        assert update.entry is None


def test_emergency_threshold_is_strict_and_accepts_float_drawdown() -> None:
    state = ReservePoolState(balance=D("500"))
    assert emergency_release(state, 0.20, NOW).entry is None
    released = emergency_release(state, 0.2001, NOW)
    assert released.entry is not None and released.entry.amount == D("-500")


def test_high_water_signal_above_thirty_percent() -> None:
    assert reserve_high_water(D("300"), D("1000")) is None
    notice = reserve_high_water(D("300.01"), D("1000"))
    assert notice and "Reserve Pool" in notice
    assert reserve_high_water(D("10"), D("0")) is None


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        siphon_profit(ReservePoolState(), D("10"), datetime(2024, 6, 3, 16, 0))


@settings(max_examples=300, deadline=None)
@given(st.lists(decimals("0", "0.5", 3), min_size=1, max_size=30), decimals("0.05", "0.45", 2))
def test_emergency_alert_once_per_crossing(drawdowns: list[Decimal], threshold: Decimal) -> None:
    """Seed 7.1 / docs/contracts.md section 6: an alert on each session the drawdown goes beyond the threshold
    from within it (or from no history), never on the sessions it stays beyond."""
    s = ReserveSettings(emergency_drawdown_threshold_pct=threshold)
    previous = [None, *drawdowns[:-1]]
    alerts = [emergency_crossed(p, d, s) for p, d in zip(previous, drawdowns)]
    beyond = [d > threshold for d in drawdowns]
    runs_beyond = sum(1 for i, b in enumerate(beyond) if b and (i == 0 or not beyond[i - 1]))
    assert sum(alerts) == runs_beyond
    assert all(b for a, b in zip(alerts, beyond) if a)


def test_emergency_crossing_edges() -> None:
    s = ReserveSettings()
    assert emergency_crossed(None, D("0.21"), s)
    assert emergency_crossed(D("0.20"), D("0.21"), s)  # exactly at the threshold is within it
    assert not emergency_crossed(D("0.25"), D("0.30"), s)
    assert not emergency_crossed(D("0.10"), D("0.20"), s)
