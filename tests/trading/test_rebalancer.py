"""Portfolio rebalancer (seed tasks 15.1-15.2)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import OrderReason, RiskTierName
from services.trading.core.models import RISK_TIER_DEFAULTS, OpenPosition, PortfolioState
from services.trading.core.rebalancer import (
    OPEN_POSITION_LIMIT,
    POSITION_LIMIT,
    SECTOR_LIMIT,
    RebalanceSettings,
    evaluate,
)

D = Decimal
MODERATE = RISK_TIER_DEFAULTS[RiskTierName.MODERATE]


def position(ticker, qty, price, sector="Tech", confidence="0.7") -> OpenPosition:
    price = D(price)
    return OpenPosition(
        ticker, D(qty), price, price, sector, price * D("0.9"), price * D("1.2"), D(confidence)
    )


positions_st = st.lists(
    st.builds(
        position,
        st.just(""),
        st.integers(1, 60),
        st.integers(1, 300),
        st.sampled_from(["Tech", "Energy", "Health", "Banks"]),
        st.sampled_from(["0.55", "0.6", "0.7", "0.8", "0.9"]),
    ),
    max_size=14,
).map(
    lambda ps: tuple(
        position(f"T{i:02d}", p.quantity, p.current_price, p.sector, p.signal_confidence)
        for i, p in enumerate(ps)
    )
)


@settings(max_examples=250, deadline=None)
@given(
    positions_st,
    st.integers(0, 20_000),
    st.integers(0, 5_000),
    st.integers(1, 12),
    st.sampled_from(list(RISK_TIER_DEFAULTS.values())),
)
def test_property_17_rebalancing_sells_bring_portfolio_within_limits(
    positions, cash, reserve, max_open, tier
):
    """Property 17: after the proposed sells every position is within max_position_pct of the
    Active Pool, every sector within max_sector_pct of total value, and at most
    max_open_positions remain; sells never exceed holdings; a position-limit trim sells no
    more than it must; sector trims take the lowest-confidence positions first."""
    portfolio = PortfolioState(positions, D(cash), min(D(reserve), D(cash)))
    plan = evaluate(
        portfolio,
        tier,
        within_trading_window=True,
        circuit_breaker_active=False,
        settings=RebalanceSettings(max_open_positions=max_open),
    )
    left = {p.ticker: p.quantity for p in positions}
    sold_by_rule = defaultdict(lambda: defaultdict(lambda: D(0)))
    for proposal in plan.proposals:
        assert proposal.order_reason == OrderReason.REBALANCE and proposal.reason
        assert proposal.quantity == sum(s.quantity for s in proposal.steps) > 0
        assert proposal.quantity == int(proposal.quantity)  # whole shares by default
        left[proposal.ticker] -= proposal.quantity
        for step in proposal.steps:
            sold_by_rule[proposal.ticker][step.rule] += step.quantity
    assert all(q >= 0 for q in left.values())

    position_cap = tier.max_position_pct * portfolio.active_pool
    sector_cap = tier.max_sector_pct * portfolio.total_value
    for p in positions:
        if portfolio.active_pool > 0:
            assert left[p.ticker] * p.current_price <= position_cap
        trimmed = sold_by_rule[p.ticker][POSITION_LIMIT]
        if trimmed:  # one share fewer would still have been over the limit
            assert (p.quantity - trimmed + 1) * p.current_price > position_cap
    sector_value = defaultdict(lambda: D(0))
    for p in positions:
        sector_value[p.sector] += left[p.ticker] * p.current_price
    assert all(v <= sector_cap for v in sector_value.values())
    assert sum(1 for q in left.values() if q > 0) <= max_open

    for a in positions:
        for b in positions:
            if (
                a.sector == b.sector
                and a.signal_confidence < b.signal_confidence
                and sold_by_rule[b.ticker][SECTOR_LIMIT]
            ):
                assert left[a.ticker] == 0  # a lower-confidence holding in that sector went first


@settings(max_examples=100, deadline=None)
@given(positions_st, st.booleans(), st.booleans())
def test_property_17_deferred_outside_window_or_under_breaker(positions, in_window, breaker):
    """Property 17: no rebalancing sells outside the trading window or while a circuit breaker
    is active; the plan says why."""
    plan = evaluate(
        PortfolioState(positions, D(100)),
        MODERATE,
        within_trading_window=in_window,
        circuit_breaker_active=breaker,
    )
    if breaker or not in_window:
        assert plan.proposals == () and plan.deferred and plan.deferred_reason
    else:
        assert not plan.deferred


def test_oversized_position_is_trimmed_back_to_the_limit():
    # Total 10,000, no reserve: a moderate position may be worth $1,000.
    portfolio = PortfolioState((position("BIG", 15, 100),), D(8_500))
    (proposal,) = evaluate(
        portfolio, MODERATE, within_trading_window=True, circuit_breaker_active=False
    ).proposals
    assert (proposal.ticker, proposal.quantity) == ("BIG", D(5))
    assert "Active Pool" in proposal.reason


def test_overweight_sector_sells_lowest_confidence_first():
    positions = (
        position("HIGH", 5, 100, "Tech", "0.9"),
        position("LOW", 5, 100, "Tech", "0.6"),
        position("MID", 5, 100, "Tech", "0.7"),
        position("OIL", 5, 100, "Energy", "0.6"),
    )
    portfolio = PortfolioState(positions, D(2_000))  # total 4,000; sector cap 35% = 1,400
    tier = replace(MODERATE, max_position_pct=D("0.2"))  # so no single position is over its own limit
    plan = evaluate(portfolio, tier, within_trading_window=True, circuit_breaker_active=False)
    sold = {p.ticker: p.quantity for p in plan.proposals}
    assert sold == {"LOW": D(1)}  # 1,500 -> 1,400 takes one share of the least confident
    assert plan.proposals[0].steps[0].rule == SECTOR_LIMIT


def test_open_position_limit_closes_lowest_confidence():
    positions = tuple(position(f"T{i}", 1, 10, f"S{i}", f"0.{i + 1}") for i in range(8))
    portfolio = PortfolioState(positions, D(100_000))
    plan = evaluate(
        portfolio,
        MODERATE,
        within_trading_window=True,
        circuit_breaker_active=False,
        settings=RebalanceSettings(max_open_positions=5),
    )
    assert {p.ticker for p in plan.proposals} == {"T0", "T1", "T2"}
    assert all(p.steps[0].rule == OPEN_POSITION_LIMIT and p.quantity == 1 for p in plan.proposals)


def test_within_limits_proposes_nothing():
    positions = (position("A", 5, 100, "Tech"), position("B", 5, 100, "Energy"))
    plan = evaluate(
        PortfolioState(positions, D(9_000)),
        MODERATE,
        within_trading_window=True,
        circuit_breaker_active=False,
    )
    assert plan.proposals == () and not plan.deferred


def test_fractional_mode_sells_to_the_step():
    portfolio = PortfolioState((position("BIG", 15, 100),), D("8500.5"))
    settings = RebalanceSettings(fractional_shares=True)
    (proposal,) = evaluate(
        portfolio, MODERATE, within_trading_window=True, circuit_breaker_active=False, settings=settings
    ).proposals
    assert proposal.quantity == D("4.9995")  # $499.95 over a $1,000.05 limit, rounded up
