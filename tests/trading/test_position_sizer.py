"""Position sizing (seed task 4, properties 1-4, 7, 19, 24; docs/contracts.md sections 5-6).

Expected sizes are recomputed here from the contract's formula (docs/contracts.md section 6) with exact fractions:
    raw_pct = base * (confidence / min_confidence) * multiplier, pct = min(raw_pct, max_pct),
    dollars = min(active_pool * pct, cap), shares = floor(dollars / price).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.shared.schemas import OrderSide, RiskTierName
from services.trading.core.models import RISK_TIER_DEFAULTS, OpenPosition, PortfolioState, RiskTierConfig
from services.trading.core.position_sizer import (
    PositionSizer,
    SizingRequest,
    SizingSettings,
    active_pool_gate,
)

D = Decimal
F = Fraction
CAP = F(2500)
MODERATE = RISK_TIER_DEFAULTS[RiskTierName.MODERATE]


class FixedCorrelation:
    def __init__(self, value: float) -> None:
        self.value = value

    def get_portfolio_correlation(self, candidate: str, positions: Sequence[OpenPosition]) -> float:
        return self.value if positions else 0.0


class DictCorrelations:
    """Pairwise coefficients in a dict; market-value-weighted mean over open positions."""

    def __init__(self, pairs: dict[frozenset[str], float]) -> None:
        self.pairs = pairs

    def get_portfolio_correlation(self, candidate: str, positions: Sequence[OpenPosition]) -> float:
        weights = [
            (float(p.market_value), self.pairs.get(frozenset((candidate, p.ticker)), 0.0)) for p in positions
        ]
        total = sum(w for w, _ in weights)
        return sum(w * c for w, c in weights) / total if total > 0 else 0.0


def position(
    ticker: str,
    sector: str,
    qty: str = "1",
    entry: str = "10",
    current: str | None = None,
    stop: str | None = None,
    confidence: str = "0.7",
) -> OpenPosition:
    return OpenPosition(
        ticker=ticker,
        quantity=D(qty),
        entry_price=D(entry),
        current_price=D(current or entry),
        sector=sector,
        stop_loss_price=D(stop or entry),
        take_profit_price=D(entry) * 2,
        signal_confidence=D(confidence),
    )


def three_sector_portfolio(cash: Decimal, reserve: Decimal = D(0)) -> PortfolioState:
    """Tiny risk-free holdings in three sectors: no diversification bonus, no heat."""
    return PortfolioState(
        positions=(position("AAA", "Tech"), position("BBB", "Health"), position("CCC", "Energy")),
        cash=cash,
        reserve_pool=reserve,
    )


def spec_shares(
    confidence: Fraction,
    tier: RiskTierConfig,
    active_pool: Decimal,
    price: Decimal,
    multiplier: Fraction = F(1),
    room: Fraction | None = None,
) -> int:
    raw_pct = F(tier.base_allocation_pct) * confidence / F(tier.min_confidence) * multiplier
    dollars = min(F(active_pool) * min(raw_pct, F(tier.max_position_pct)), CAP)
    if room is not None:
        dollars = min(dollars, room)
    return math.floor(dollars / F(price))


def decimals(lo: str, hi: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(lo), max_value=D(hi), places=places, allow_nan=False, allow_infinity=False)


@st.composite
def tiers(
    draw: st.DrawFn, max_sector: Decimal | None = None, max_heat: Decimal | None = None
) -> RiskTierConfig:
    base = draw(decimals("0.01", "0.10", 3))
    return RiskTierConfig(
        name=draw(st.sampled_from(list(RiskTierName))),
        min_confidence=draw(decimals("0.30", "0.90", 2)),
        base_allocation_pct=base,
        max_position_pct=draw(decimals(str(base), "0.30", 3)),
        stop_loss_atr_multiplier=D("2"),
        reward_risk_ratio=D("2"),
        max_sector_pct=max_sector if max_sector is not None else draw(decimals("0.05", "1", 2)),
        max_portfolio_heat=max_heat if max_heat is not None else draw(decimals("0.01", "0.30", 3)),
    )


confidences = decimals("0", "1", 3)


def at_or_above_minimum(tier: RiskTierConfig, unit: Decimal) -> Decimal:
    """Map a draw in [0, 1] onto [min_confidence, 1] (filtering would discard most draws)."""
    return (tier.min_confidence + (1 - tier.min_confidence) * unit).quantize(D("0.0001"))


prices = decimals("0.50", "3000", 2)
pools = decimals("100", "200000", 2)
sizer = PositionSizer(FixedCorrelation(0.0))


def request(
    confidence: Decimal | float,
    price: Decimal,
    sector: str = "Tech",
    stop_distance: Decimal = D(0),
    earnings: int | None = None,
    ticker: str = "NEW",
) -> SizingRequest:
    return SizingRequest(
        ticker=ticker,
        sector=sector,
        confidence=confidence,
        current_price=price,
        stop_distance=stop_distance,
        sessions_until_earnings=earnings,
    )


@settings(max_examples=300, deadline=None)
@given(tiers(max_sector=D(1)), confidences, pools, prices)
def test_property_1_sizing_formula_and_invariants(
    tier: RiskTierConfig, confidence: Decimal, cash: Decimal, price: Decimal
) -> None:
    """Property 1: zero allocation below min_confidence; otherwise the contract's formula (docs/contracts.md section 6), never
    above max_position_pct of the Active Pool nor the absolute cap, whole shares rounded
    down, and a rejection when that rounds to zero."""
    portfolio = three_sector_portfolio(cash)
    result = sizer.compute(request(confidence, price), portfolio, tier)
    if confidence < tier.min_confidence:
        assert result.rejected and "minimum" in (result.rejection_reason or "")
        assert result.dollar_amount == 0 and result.share_quantity == 0
        return
    expected = spec_shares(F(confidence), tier, portfolio.active_pool, price)
    if expected == 0:
        assert result.rejected and "buys no whole share" in (result.rejection_reason or "")
        assert result.share_quantity == 0
        return
    assert not result.rejected
    assert result.share_quantity == expected
    assert result.share_quantity == result.share_quantity.to_integral_value()
    assert result.dollar_amount == result.share_quantity * price
    assert result.dollar_amount <= portfolio.active_pool * tier.max_position_pct
    assert result.dollar_amount <= D(2500)


@settings(max_examples=200, deadline=None)
@given(tiers(max_sector=D(1)), confidences, pools, prices, decimals("-1", "1", 3), decimals("-1", "1", 3))
def test_property_2_correlation_adjustment(
    tier: RiskTierConfig, confidence: Decimal, cash: Decimal, price: Decimal, c1: Decimal, c2: Decimal
) -> None:
    """Property 2: c <= 0.5 unchanged, 0.5 < c <= 0.8 scaled by (1 - c) / 0.5, c > 0.8
    rejected; higher correlation never gives a larger position."""
    confidence = at_or_above_minimum(tier, confidence)
    portfolio = three_sector_portfolio(cash)
    baseline = sizer.compute(request(confidence, price), portfolio, tier)

    def shares_at(c: Decimal) -> Decimal:
        result = PositionSizer(FixedCorrelation(float(c))).compute(
            request(confidence, price), portfolio, tier
        )
        if c > D("0.8"):
            assert result.rejected and "correlation" in (result.rejection_reason or "")
        elif c <= D("0.5"):
            assert result == baseline
        else:
            expected = spec_shares(F(confidence), tier, portfolio.active_pool, price, (1 - F(c)) / F(1, 2))
            assert result.share_quantity == expected
            assert result.rejected is (expected == 0)
        return result.share_quantity

    low, high = sorted((c1, c2))
    assert shares_at(low) >= shares_at(high)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 50), decimals("1", "500", 2), decimals("-1", "1", 2)), min_size=1, max_size=8
    ),
    pools,
    prices,
)
def test_property_2_weighted_correlation_from_matrix(
    holdings: list[tuple[int, Decimal, Decimal]], cash: Decimal, price: Decimal
) -> None:
    """Property 2: with a pairwise matrix, the market-value-weighted mean decides: > 0.8
    rejects, <= 0.5 sizes as if uncorrelated."""
    positions = tuple(
        position(f"T{i}", ["Tech", "Health", "Energy"][i % 3], str(q), str(p))
        for i, (q, p, _) in enumerate(holdings)
    )
    pairs = {frozenset(("NEW", f"T{i}")): float(c) for i, (_, _, c) in enumerate(holdings)}
    weighted = sum(F(p.market_value) * F(c) for p, (_, _, c) in zip(positions, holdings)) / sum(
        F(p.market_value) for p in positions
    )
    portfolio = PortfolioState(positions=positions, cash=cash)
    tier = RiskTierConfig(RiskTierName.MODERATE, D("0.6"), D("0.05"), D("0.1"), D(2), D(2), D(1), D(1))
    assume(abs(weighted - F(4, 5)) > F(1, 10**9) and abs(weighted - F(1, 2)) > F(1, 10**9))  # float noise
    result = PositionSizer(DictCorrelations(pairs)).compute(request(D("0.8"), price), portfolio, tier)
    uncorrelated = PositionSizer(FixedCorrelation(0.0)).compute(request(D("0.8"), price), portfolio, tier)
    if weighted > F(4, 5):
        assert result.rejected
    elif weighted < F(1, 2):
        assert result == uncorrelated
    else:
        assert result.share_quantity <= uncorrelated.share_quantity


sector_names = st.sampled_from(["Tech", "Health", "Energy", "Finance", "Utilities"])
holdings_strategy = st.lists(
    st.tuples(sector_names, st.integers(1, 200), decimals("1", "400", 2)), min_size=0, max_size=8
)


def build_portfolio(holdings: list[tuple[str, int, Decimal]], cash: Decimal) -> PortfolioState:
    return PortfolioState(
        positions=tuple(position(f"H{i}", s, str(q), str(p)) for i, (s, q, p) in enumerate(holdings)),
        cash=cash,
    )


def spec_multiplier(portfolio: PortfolioState, sector: str) -> Fraction:
    held = {p.sector for p in portfolio.positions}
    return F(6, 5) if len(held) < 3 and sector not in held else F(1)


@settings(max_examples=200, deadline=None)
@given(holdings_strategy, sector_names, tiers(), confidences, pools, prices)
def test_property_3_sector_exposure(
    holdings: list[tuple[str, int, Decimal]],
    sector: str,
    tier: RiskTierConfig,
    confidence: Decimal,
    cash: Decimal,
    price: Decimal,
) -> None:
    """Property 3: sector exposure is the sum of market values per sector; a new position is
    cut so its sector stays within max_sector_pct of total value, and rejected when no room."""
    confidence = at_or_above_minimum(tier, confidence)
    portfolio = build_portfolio(holdings, cash)
    by_hand: dict[str, Decimal] = {}
    for s, q, p in holdings:
        by_hand[s] = by_hand.get(s, D(0)) + q * p
    assert portfolio.sector_exposure == by_hand

    result = sizer.compute(request(confidence, price, sector), portfolio, tier)
    limit = F(tier.max_sector_pct) * F(portfolio.total_value)
    room = limit - F(by_hand.get(sector, D(0)))
    if room <= 0:
        assert result.rejected and "sector" in (result.rejection_reason or "")
        return
    # Buys are paid from cash: the sector's room or the cash, whichever is smaller.
    expected = spec_shares(
        F(confidence),
        tier,
        portfolio.active_pool,
        price,
        spec_multiplier(portfolio, sector),
        min(room, F(cash)),
    )
    assert result.share_quantity == expected
    assert F(by_hand.get(sector, D(0))) + F(result.dollar_amount) <= limit


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5), st.booleans(), tiers(max_sector=D(1)), confidences, pools, prices)
def test_property_4_diversification_bonus(
    sector_count: int,
    new_sector: bool,
    tier: RiskTierConfig,
    confidence: Decimal,
    cash: Decimal,
    price: Decimal,
) -> None:
    """Property 4: 1.2x when the portfolio holds fewer than 3 sectors and the candidate's
    sector is not among them; no bonus otherwise."""
    confidence = at_or_above_minimum(tier, confidence)
    assume(new_sector or sector_count > 0)
    sectors = [f"S{i}" for i in range(sector_count)]
    portfolio = PortfolioState(
        positions=tuple(position(f"H{i}", s) for i, s in enumerate(sectors)), cash=cash
    )
    candidate = "Brand-new" if new_sector else sectors[0]
    result = sizer.compute(request(confidence, price, candidate), portfolio, tier)
    bonus = F(6, 5) if sector_count < 3 and new_sector else F(1)
    assert result.share_quantity == spec_shares(F(confidence), tier, portfolio.active_pool, price, bonus)
    assert any(a.name == "diversification_bonus" and a.factor == D("1.2") for a in result.adjustments) is (
        bonus != 1
    )


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.integers(0, 15)), tiers(max_sector=D(1)), confidences, pools, prices)
def test_property_19_earnings_proximity(
    sessions: int | None, tier: RiskTierConfig, confidence: Decimal, cash: Decimal, price: Decimal
) -> None:
    """Property 19: within 1 trading session of earnings rejected; within 3 halved; else normal."""
    confidence = at_or_above_minimum(tier, confidence)
    portfolio = three_sector_portfolio(cash)
    result = sizer.compute(request(confidence, price, earnings=sessions), portfolio, tier)
    if sessions is not None and sessions <= 1:
        assert result.rejected and "earnings" in (result.rejection_reason or "")
        return
    factor = F(1, 2) if sessions is not None and sessions <= 3 else F(1)
    assert result.share_quantity == spec_shares(F(confidence), tier, portfolio.active_pool, price, factor)


risky_holdings = st.lists(
    st.tuples(st.integers(1, 100), decimals("5", "300", 2), decimals("0", "1.2", 2)), min_size=0, max_size=8
)


@settings(max_examples=200, deadline=None)
@given(risky_holdings, tiers(max_sector=D(1)), confidences, pools, prices, decimals("0", "50", 2))
def test_property_24_portfolio_heat(
    holdings: list[tuple[int, Decimal, Decimal]],
    tier: RiskTierConfig,
    confidence: Decimal,
    cash: Decimal,
    price: Decimal,
    stop_distance: Decimal,
) -> None:
    """Property 24: heat = sum(position_value * (entry - stop) / entry) / total value over
    positions with stop below entry; an entry whose resulting heat exceeds max_portfolio_heat
    is rejected, and accepted entries keep heat within it."""
    positions = tuple(
        position(f"H{i}", ["Tech", "Health", "Energy"][i % 3], str(q), str(p), stop=str(p * ratio))
        for i, (q, p, ratio) in enumerate(holdings)
    )
    portfolio = PortfolioState(positions=positions, cash=cash)
    total = F(cash) + sum((F(p.quantity * p.entry_price) for p in positions), F(0))
    risk = sum(
        (
            F(p.quantity * p.entry_price) * (F(p.entry_price) - F(p.stop_loss_price)) / F(p.entry_price)
            for p in positions
            if p.stop_loss_price < p.entry_price
        ),
        F(0),
    )
    assert abs(F(portfolio.portfolio_heat) - risk / total) < F(1, 10**20)  # Decimal division: 28 digits

    confidence = at_or_above_minimum(tier, confidence)
    result = sizer.compute(request(confidence, price, "Tech", stop_distance), portfolio, tier)
    room = F(tier.max_sector_pct) * total - F(portfolio.sector_exposure.get("Tech", D(0)))
    expected = (
        spec_shares(
            F(confidence),
            tier,
            portfolio.active_pool,
            price,
            spec_multiplier(portfolio, "Tech"),
            min(room, F(cash)),
        )
        if room > 0
        else 0
    )
    if expected == 0:
        assert result.rejected
        return
    heat_after = (risk + expected * F(stop_distance)) / total
    assert result.rejected is (heat_after > F(tier.max_portfolio_heat))
    if result.rejected:
        assert "heat" in (result.rejection_reason or "")
    else:
        assert (risk + F(result.share_quantity) * F(stop_distance)) / total <= F(tier.max_portfolio_heat)


@settings(max_examples=200, deadline=None)
@given(decimals("-1000", "100000", 2), decimals("0", "1000", 2), st.sampled_from(list(OrderSide)))
def test_property_7_active_pool_minimum_halts_entries_not_exits(
    active: Decimal, minimum: Decimal, side: OrderSide
) -> None:
    """Property 7: buys rejected when Active Pool < minimum; sells always allowed."""
    reason = active_pool_gate(side, active, SizingSettings(active_pool_minimum=minimum))
    if side is OrderSide.SELL or active >= minimum:
        assert reason is None
    else:
        assert reason and "Active Pool" in reason


@settings(max_examples=100, deadline=None)
@given(decimals("0", "5000", 2), decimals("0", "5000", 2))
def test_property_7_sizer_refuses_buys_below_active_pool_minimum(cash: Decimal, reserve: Decimal) -> None:
    """Property 7: the sizer rejects every buy while Active Pool = total - reserve < $100."""
    portfolio = three_sector_portfolio(cash, reserve)
    result = sizer.compute(request(D("0.9"), D("1")), portfolio, MODERATE)
    if portfolio.active_pool < 100:
        assert result.rejected and "Active Pool" in (result.rejection_reason or "")


# -- examples -----------------------------------------------------------------------------


def test_confidence_exactly_at_threshold_is_accepted() -> None:
    portfolio = three_sector_portfolio(D("10000"))
    for confidence in (D("0.65"), 0.65):
        result = sizer.compute(request(confidence, D("10")), portfolio, MODERATE)
        # 0.05 * (0.65 / 0.65) * 10003 = $500.15 -> 50 shares at $10.
        assert not result.rejected
        assert result.share_quantity == 50
    below = sizer.compute(request(D("0.6499"), D("10")), portfolio, MODERATE)
    assert below.rejected and "below" in (below.rejection_reason or "")


def test_trace_lists_each_adjustment_with_factor_and_reason() -> None:
    portfolio = PortfolioState(positions=(position("AAA", "Tech", "10", "100"),), cash=D("20000"))
    result = PositionSizer(FixedCorrelation(0.6)).compute(
        request(D("0.65"), D("7"), "Health", earnings=3), portfolio, MODERATE
    )
    names = [a.name for a in result.adjustments]
    assert names == ["earnings_proximity", "correlation", "diversification_bonus"]
    factors = {a.name: a.factor for a in result.adjustments}
    assert factors["earnings_proximity"] == D("0.5")
    assert factors["correlation"] == D("0.8")
    assert factors["diversification_bonus"] == D("1.2")
    assert all(a.reason for a in result.adjustments)
    # 21000 * 0.05 * 0.5 * 0.8 * 1.2 = $504 -> 72 shares at $7, exactly, no rounding loss.
    assert result.share_quantity == 72 and result.dollar_amount == D("504")


def test_absolute_cap_and_clamp_are_traced() -> None:
    portfolio = three_sector_portfolio(D("1000000"))
    result = sizer.compute(request(D("1"), D("10")), portfolio, MODERATE)
    # 0.05 * 1 / 0.65 = 0.0769 of $1M is $76,923, above the $2,500 cap.
    assert result.dollar_amount == D("2500")
    assert [a.name for a in result.adjustments] == ["absolute_position_cap"]
    tier = RiskTierConfig(RiskTierName.MODERATE, D("0.5"), D("0.08"), D("0.10"), D(2), D(2), D(1), D(1))
    clamped = sizer.compute(request(D("1"), D("10")), three_sector_portfolio(D("9970")), tier)
    # raw 0.08 * 1 / 0.5 = 0.16 -> clamped to 0.10 of $10,000 = $1,000 -> 100 shares.
    assert clamped.share_quantity == 100
    assert [a.name for a in clamped.adjustments] == ["max_position_pct"]
    assert clamped.adjustments[0].factor == D("0.625")


def test_bad_inputs_become_rejections_with_reasons() -> None:
    portfolio = three_sector_portfolio(D("10000"))
    for bad in (float("nan"), 1.5, -0.1):
        result = sizer.compute(request(bad, D("10")), portfolio, MODERATE)
        assert result.rejected and "confidence" in (result.rejection_reason or "")
    assert sizer.compute(request(D("0.9"), D("0")), portfolio, MODERATE).rejected
    nan_corr = PositionSizer(FixedCorrelation(float("nan"))).compute(
        request(D("0.9"), D("10")), portfolio, MODERATE
    )
    assert nan_corr.rejected and "correlation" in (nan_corr.rejection_reason or "")


def test_fractional_shares_option() -> None:
    portfolio = three_sector_portfolio(D("1000"))
    fractional = PositionSizer(FixedCorrelation(0.0), SizingSettings(fractional_shares=True))
    result = fractional.compute(request(D("0.65"), D("300")), portfolio, MODERATE)
    # 0.05 * $1,030 = $51.50 at $300 -> 0.171666.. floored to the 0.0001 step; whole shares: zero.
    assert result.share_quantity == D("0.1716")
    assert sizer.compute(request(D("0.65"), D("300")), portfolio, MODERATE).rejected


@settings(max_examples=300, deadline=None)
@given(
    tiers(max_sector=D(1), max_heat=D(1)),
    confidences,
    pools,
    prices,
    st.integers(1, 400),
    decimals("0", "1.5", 3),
)
def test_property_1_an_add_on_keeps_the_whole_position_within_its_limits(
    tier: RiskTierConfig,
    confidence: Decimal,
    cash: Decimal,
    price: Decimal,
    held: int,
    held_share_of_limit: Decimal,
) -> None:
    """Property 1 for a ticker already held: the position after the buy, not only the new
    shares, stays within max_position_pct of the Active Pool and the absolute cap; a
    position already at its limit gets nothing."""
    confidence = at_or_above_minimum(tier, confidence)
    # A holding sized as a share of its own limit (0 to 150%), so both sides of the limit occur.
    active_pool_guess = F(cash)
    limit_guess = min(F(tier.max_position_pct) * active_pool_guess, CAP)
    held_price = max(
        D("0.01"),
        (D(limit_guess.numerator) / D(limit_guess.denominator) * held_share_of_limit / held).quantize(
            D("0.01")
        ),
    )
    portfolio = PortfolioState(
        positions=(
            position("AAA", "Health"),
            position("BBB", "Energy"),
            position("NEW", "Tech", str(held), str(held_price)),
        ),
        cash=cash,
    )
    result = sizer.compute(request(confidence, price, "Tech"), portfolio, tier)

    held_value = F(held) * F(held_price)
    limit = min(F(tier.max_position_pct) * F(portfolio.active_pool), CAP)
    if held_value >= limit:
        assert result.rejected and "position limit" in (result.rejection_reason or "")
        return
    assert held_value + F(result.dollar_amount) <= limit
    assert result.share_quantity == spec_shares(
        F(confidence), tier, portfolio.active_pool, price, room=min(limit - held_value, F(cash))
    )


@settings(max_examples=300, deadline=None)
@given(
    tiers(max_sector=D(1), max_heat=D(1)),
    confidences,
    pools,
    prices,
    decimals("0", "1", 3),
    decimals("0", "0.9", 3),
)
def test_buys_never_spend_the_reserve_pool_or_cash_the_account_lacks(
    tier: RiskTierConfig,
    confidence: Decimal,
    total: Decimal,
    price: Decimal,
    cash_share: Decimal,
    reserve_share: Decimal,
) -> None:
    """The Reserve Pool is siphoned profit kept in cash (docs/contracts.md section 6): a buy spends at most
    the cash beyond it, and with none left it is rejected."""
    confidence = at_or_above_minimum(tier, confidence)
    cash = (total * cash_share).quantize(D("0.01"))
    invested = total - cash
    reserve = (total * reserve_share).quantize(D("0.01"))
    portfolio = PortfolioState(
        positions=(position("AAA", "Health", "1", str(invested)),) if invested else (),
        cash=cash,
        reserve_pool=reserve,
    )
    assume(portfolio.active_pool >= 100)  # the Active Pool minimum is property 7's
    result = sizer.compute(request(confidence, price, "Tech"), portfolio, tier)

    spendable = F(cash) - F(reserve)
    if spendable <= 0:
        assert result.rejected and "Reserve Pool" in (result.rejection_reason or "")
        return
    assert F(result.dollar_amount) <= spendable
    assert result.share_quantity == spec_shares(
        F(confidence), tier, portfolio.active_pool, price, spec_multiplier(portfolio, "Tech"), room=spendable
    )


@settings(max_examples=300, deadline=None)
@given(
    decimals("0", "1", 2),
    decimals("0", "1", 2),
    st.sampled_from(["reduce", "reject"]),
    st.integers(-2, 2),
    st.floats(-1, 1),
    st.booleans(),
)
def test_a_correlation_is_read_as_its_shortest_decimal_against_both_thresholds(
    reduce_above: Decimal, reject_above: Decimal, near: str, ulps: int, anywhere: float, at_threshold: bool
) -> None:
    """A float correlation is compared with the thresholds as the decimal it prints as (0.5 is
    0.5, not the double nearest it), including the floats a few units in the last place
    either side of a threshold, where a comparison of floats alone could go the other way."""
    raw = anywhere
    if at_threshold:
        raw = float(reduce_above if near == "reduce" else reject_above)
        for _ in range(abs(ulps)):
            raw = math.nextafter(raw, math.inf if ulps > 0 else -math.inf)
    limits = SizingSettings(correlation_reduce_above=reduce_above, correlation_reject_above=reject_above)
    result = PositionSizer(FixedCorrelation(raw), limits).compute(
        request(D("0.9"), D("10")), three_sector_portfolio(D("50000")), MODERATE
    )
    read = Decimal(repr(raw))
    adjusted = {a.name: a for a in result.adjustments}
    if read > reject_above:
        assert result.rejected and "exceeds" in (result.rejection_reason or "")
    elif read > reduce_above:
        # Scaled, never refused for it (a scale near 0 may leave no whole share to buy).
        assert "correlation" in adjusted and "exceeds" not in (result.rejection_reason or "")
    else:
        assert "correlation" not in adjusted and not result.rejected
