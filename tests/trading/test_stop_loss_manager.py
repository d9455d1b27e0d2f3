"""Stops and take-profits (seed task 6, properties 9, 10, 11, 15, 25; docs/contracts.md section 6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.models import OpenPosition, StopLevels
from services.trading.core.stop_loss_manager import (
    Bar,
    apply_trailing_stop,
    average_true_range,
    check_price_crossing,
    check_price_crossings,
    check_price_unavailable,
    compute_initial_levels,
    effective_atr_multiplier,
    levels_after_add,
    re_evaluate_levels,
    tighten_for_heat,
)

D = Decimal
NY = ZoneInfo("America/New_York")
NOW = datetime(2024, 6, 3, 14, 0, tzinfo=UTC)


def decimals(lo: str, hi: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(lo), max_value=D(hi), places=places, allow_nan=False, allow_infinity=False)


multipliers = st.sampled_from([D("1.0"), D("1.5"), D("2.0"), D("2.5"), D("3")])
ratios = st.sampled_from([D("1.5"), D("2.0"), D("3")])


@st.composite
def entry_and_atr(draw: st.DrawFn) -> tuple[Decimal, Decimal, Decimal]:
    """An entry, ATR and multiplier with the stop above zero."""
    entry = draw(decimals("1", "5000", 2))
    mult = draw(multipliers)
    atr = (
        draw(
            st.decimals(
                min_value=D("0.01"), max_value=(entry / mult - D("0.01")).quantize(D("0.01")), places=2
            )
        )
        if entry / mult > D("0.02")
        else D("0.01")
    )
    return entry, atr, mult


@st.composite
def open_levels(draw: st.DrawFn) -> tuple[Decimal, StopLevels]:
    entry, atr, mult = draw(entry_and_atr())
    return entry, compute_initial_levels(entry, atr, mult, draw(ratios), NOW)


# -- ATR -----------------------------------------------------------------------------------


def wilder_reference(highs: list[float], lows: list[float], closes: list[float], n: int = 14) -> float:
    """Wilder's ATR written as a running update, ATR += (TR - ATR) / n, in floats."""
    tr = [max(hi - lo, abs(hi - c), abs(lo - c)) for hi, lo, c in zip(highs[1:], lows[1:], closes[:-1])]
    atr = sum(tr[:n]) / n
    for value in tr[n:]:
        atr += (value - atr) / n
    return atr


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(decimals("1", "500", 2), decimals("0", "20", 2), decimals("0", "1", 2)),
        min_size=15,
        max_size=60,
    )
)
def test_atr_matches_wilder_reference(raw: list[tuple[Decimal, Decimal, Decimal]]) -> None:
    """ATR(14) with Wilder's smoothing equals an independent float implementation."""
    bars = [Bar(high=low + spread, low=low, close=low + spread * where) for low, spread, where in raw]
    expected = wilder_reference(
        [float(b.high) for b in bars], [float(b.low) for b in bars], [float(b.close) for b in bars]
    )
    assert float(average_true_range(bars)) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_atr_of_constant_range_is_that_range_and_needs_15_bars() -> None:
    bars = [Bar(D("101"), D("99"), D("100"))] * 15
    assert average_true_range(bars) == D("2")
    with pytest.raises(ValueError, match="15 bars"):
        average_true_range(bars[:14])


# -- initial levels --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(entry_and_atr(), ratios)
def test_property_9_initial_stop_and_take_profit(
    inputs: tuple[Decimal, Decimal, Decimal], rr: Decimal
) -> None:
    """Property 9: stop = entry - ATR * multiplier, below entry; take-profit = entry +
    stop distance * reward/risk, above entry."""
    entry, atr, mult = inputs
    levels = compute_initial_levels(entry, atr, mult, rr, NOW)
    assert levels.stop_loss_price == entry - atr * mult
    assert levels.stop_loss_price < entry
    assert levels.take_profit_price == entry + atr * mult * rr
    assert levels.take_profit_price > entry
    assert not levels.trailing_stop_active


def test_stop_at_or_below_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="never fire"):
        compute_initial_levels(D("10"), D("5"), D("2"), D("2"), NOW)


# -- crossings -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(open_levels(), decimals("0.01", "20000", 2))
def test_property_10_price_crossing_triggers_sell(setup: tuple[Decimal, StopLevels], price: Decimal) -> None:
    """Property 10: a sell triggers iff price <= stop or price >= take-profit."""
    _, levels = setup
    trigger = check_price_crossing("XYZ", levels, price)
    if price <= levels.stop_loss_price:
        assert trigger is not None and trigger.trigger_type == "stop_loss"
        assert trigger.trigger_price == levels.stop_loss_price and trigger.current_price == price
    elif price >= levels.take_profit_price:
        assert trigger is not None and trigger.trigger_type == "take_profit"
    else:
        assert trigger is None


def test_gap_through_the_stop_still_triggers() -> None:
    levels = compute_initial_levels(D("100"), D("2"), D("2"), D("2"), NOW)  # stop 96, tp 108
    gap = check_price_crossing("XYZ", levels, D("71.30"))  # opened far below the stop
    assert gap is not None and gap.trigger_type == "stop_loss"
    assert gap.current_price == D("71.30") and gap.trigger_price == D("96")
    assert check_price_crossing("XYZ", levels, D("96")) is not None  # exactly at the stop
    assert check_price_crossing("XYZ", levels, D("96.01")) is None
    gap_up = check_price_crossing("XYZ", levels, D("130"))
    assert gap_up is not None and gap_up.trigger_type == "take_profit"
    both = check_price_crossings(
        {"XYZ": levels, "ABC": levels, "NOP": levels}, {"XYZ": D("50"), "ABC": D("100")}
    )
    assert [t.ticker for t in both] == ["XYZ"]


# -- trailing --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(open_levels(), decimals("0", "1.5", 3))
def test_property_11_trailing_stop_activation(setup: tuple[Decimal, StopLevels], fraction: Decimal) -> None:
    """Property 11: the stop moves to entry iff price moved more than 50% of the way from
    entry to take-profit; never lower than before."""
    entry, levels = setup
    price = entry + (levels.take_profit_price - entry) * fraction
    updated = apply_trailing_stop(levels, entry, price, NOW + timedelta(minutes=1))
    if fraction > D("0.5"):
        assert updated is not None and updated.trailing_stop_active
        assert updated.stop_loss_price == entry >= levels.stop_loss_price
        assert updated.take_profit_price == levels.take_profit_price
        assert apply_trailing_stop(updated, entry, price, NOW) is None  # once only
        trigger = check_price_crossing("XYZ", updated, entry)
        assert trigger is not None and trigger.trigger_type == "trailing_stop"
    else:
        assert updated is None


# -- tightening --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(entry_and_atr(), ratios, st.booleans())
def test_property_15_high_severity_event_tightening(
    inputs: tuple[Decimal, Decimal, Decimal], rr: Decimal, earnings: bool
) -> None:
    """Property 15: during a high-severity event the stop uses 0.5x the normal multiplier and
    sits closer to price than the normal stop."""
    entry, atr, mult = inputs
    tight = effective_atr_multiplier(mult, high_severity_event=True, earnings_soon=earnings)
    assert tight == mult * D("0.5")
    normal = compute_initial_levels(entry, atr, mult, rr, NOW)
    event = compute_initial_levels(entry, atr, tight, rr, NOW)
    assert event.stop_loss_price == entry - atr * mult / 2
    assert normal.stop_loss_price < event.stop_loss_price < entry
    # An open position is tightened at once when the event starts, whatever the interval.
    moved = re_evaluate_levels(normal, entry, atr, NOW + timedelta(seconds=1), atr_multiplier=tight)
    assert moved is not None and moved.stop_loss_price == event.stop_loss_price


def test_earnings_tightening_uses_point_seven() -> None:
    assert effective_atr_multiplier(D("2"), earnings_soon=True) == D("1.4")
    assert effective_atr_multiplier(D("2")) == D("2")


@st.composite
def heated_portfolios(draw: st.DrawFn) -> tuple[list[OpenPosition], Decimal, Decimal]:
    count = draw(st.integers(1, 8))
    positions = []
    for i in range(count):
        entry = draw(decimals("10", "200", 2))
        positions.append(
            OpenPosition(
                ticker=f"P{i}",
                quantity=D(draw(st.integers(1, 50))),
                entry_price=entry,
                current_price=entry,
                sector="Tech",
                stop_loss_price=entry * draw(decimals("0.80", "1.00", 2)),
                take_profit_price=entry * 2,
                signal_confidence=draw(decimals("0.50", "0.99", 2)),
            )
        )
    risk = sum(p.quantity * max(p.entry_price - p.stop_loss_price, D(0)) for p in positions)
    value = sum(p.quantity * p.current_price for p in positions)
    max_heat = draw(decimals("0.02", "0.20", 3))
    # Total value chosen so heat lands around the 80% line: a factor of 0.5x..1.5x of it.
    around = draw(decimals("0.5", "1.5", 2))
    total = max(value, (risk / (D("0.8") * max_heat * around)).quantize(D("0.01")) if risk else value)
    return positions, total, max_heat


@settings(max_examples=200, deadline=None)
@given(heated_portfolios())
def test_property_25_proactive_tightening_lowest_confidence_first(
    case: tuple[list[OpenPosition], Decimal, Decimal],
) -> None:
    """Property 25: above 80% of max heat, stops are tightened lowest confidence first; no
    tightened position has higher confidence than an untouched one; heat falls to 80% or every
    risky position was tightened; at or below 80% nothing moves; no stop moves down."""
    positions, total, max_heat = case
    risk = {p.ticker: p.quantity * max(p.entry_price - p.stop_loss_price, D(0)) for p in positions}
    heat_before = sum(risk.values()) / total
    adjustments = tighten_for_heat(positions, total, max_heat)
    if heat_before <= D("0.8") * max_heat:
        assert adjustments == ()
        return
    by_ticker = {p.ticker: p for p in positions}
    touched = {a.ticker for a in adjustments}
    untouched_risky = [p for p in positions if p.ticker not in touched and risk[p.ticker] > 0]
    for a in adjustments:
        assert a.new_stop > a.previous_stop and a.reason
        assert all(by_ticker[a.ticker].signal_confidence <= u.signal_confidence for u in untouched_risky)
    new_risk = dict(risk)
    for a in adjustments:
        new_risk[a.ticker] = by_ticker[a.ticker].quantity * (by_ticker[a.ticker].entry_price - a.new_stop)
    assert sum(new_risk.values()) / total <= D("0.8") * max_heat or not untouched_risky


# -- re-evaluation -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(open_levels(), decimals("0.5", "1.6", 3), st.integers(0, 900))
def test_re_evaluation_when_atr_moves_more_than_ten_percent(
    setup: tuple[Decimal, StopLevels], ratio: Decimal, seconds: int
) -> None:
    """Re-evaluation happens iff ATR moved by more than 10% and at least 5 minutes passed;
    the stop never moves down and take-profit keeps the reward/risk ratio."""
    entry, levels = setup
    new_atr = levels.atr_value * ratio
    later = levels.last_updated + timedelta(seconds=seconds)
    updated = re_evaluate_levels(levels, entry, new_atr, later)
    due = abs(ratio - 1) > D("0.1") and seconds >= 300
    assert (updated is not None) is due
    if updated is not None:
        assert updated.stop_loss_price == max(levels.stop_loss_price, entry - new_atr * levels.atr_multiplier)
        assert updated.stop_loss_price >= levels.stop_loss_price
        assert (
            updated.take_profit_price == entry + (entry - updated.stop_loss_price) * levels.reward_risk_ratio
        )
        assert updated.atr_value == new_atr and updated.last_updated == later


# -- price unavailable ----------------------------------------------------------------------------


def _ny(h: int, m: int, s: int = 0, day: int = 3) -> datetime:
    return datetime(2024, 6, day, h, m, s, tzinfo=NY)


def test_price_unavailable_for_more_than_15_market_minutes_closes() -> None:
    assert check_price_unavailable("XYZ", _ny(10, 0), _ny(10, 15)) is None
    trigger = check_price_unavailable("XYZ", _ny(10, 0), _ny(10, 15, 1))
    assert trigger is not None and trigger.trigger_type == "price_unavailable"
    # Overnight: the last price came yesterday; staleness counts from today's 09:30 open.
    assert check_price_unavailable("XYZ", _ny(15, 59, day=3), _ny(9, 40, day=4)) is None
    assert check_price_unavailable("XYZ", _ny(15, 59, day=3), _ny(9, 45, 1, day=4)) is not None
    assert check_price_unavailable("XYZ", None, _ny(9, 45, 1, day=4)) is not None
    # Outside market hours nothing is expected to trade, so nothing closes.
    assert check_price_unavailable("XYZ", _ny(10, 0), _ny(17, 0)) is None
    with pytest.raises(ValueError, match="naive"):
        check_price_unavailable("XYZ", datetime(2024, 6, 3, 10, 0), _ny(10, 30))


@settings(max_examples=200, deadline=None)
@given(
    held=st.integers(1, 500),
    add=st.integers(1, 500),
    held_entry=st.decimals(Decimal("10"), Decimal("500"), places=2),
    fill=st.decimals(Decimal("10"), Decimal("500"), places=2),
    atr=st.decimals(Decimal("0.1"), Decimal("3"), places=2),
    trailing=st.booleans(),
)
def test_adding_to_a_position_never_loosens_its_stop(held, add, held_entry, fill, atr, trailing) -> None:
    """Stops only move up (decision core I), also when a tranche or add-on fills: the entry
    becomes the share-weighted average and the stop the higher of the old one and the one
    docs/contracts.md section 6 gives at the new entry; an active trailing stop keeps its take-profit."""
    now = datetime(2024, 3, 5, 16, tzinfo=UTC)
    old = compute_initial_levels(held_entry, atr, Decimal(2), Decimal(2), now)
    if trailing:
        old = replace(old, stop_loss_price=held_entry, trailing_stop_active=True)
    entry, new = levels_after_add(
        old, Decimal(held), held_entry, Decimal(add), fill, atr, Decimal(2), Decimal(2), now
    )
    # the share-weighted average, to Decimal's 28 significant digits
    assert abs(entry * (held + add) - (held_entry * held + fill * add)) < Decimal("1e-20")
    spec_stop = entry - atr * 2
    assert new.stop_loss_price == max(old.stop_loss_price, spec_stop)
    assert new.take_profit_price == (old.take_profit_price if trailing else entry + (entry - spec_stop) * 2)
