"""Portfolio-level entry gates (seed tasks 13.4 and 13.5)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.entry_guards import check_declining_positions, check_max_open_positions
from services.trading.core.models import OpenPosition

D = Decimal


def position(ticker: str, entry: Decimal, price: Decimal) -> OpenPosition:
    return OpenPosition(ticker, D(5), entry, price, "Tech", entry * D("0.9"), entry * D("1.2"), D("0.7"))


# Moves in basis points from -10% to +10%, including exactly -2%.
moves_bp = st.lists(st.one_of(st.integers(-1000, 1000), st.just(-200), st.just(-201)), max_size=15)


@settings(max_examples=300, deadline=None)
@given(moves_bp, st.integers(1, 500))
def test_property_16_declining_positions_halt_entries(moves, entry_dollars):
    """Property 16: new entries halt exactly when more than 50% of open positions have an
    unrealized loss of more than 2%; at or below half they are allowed."""
    entry = D(entry_dollars)
    positions = [position(f"T{i}", entry, entry * (1 + D(bp) / 10_000)) for i, bp in enumerate(moves)]
    declining = sum(1 for bp in moves if bp < -200)  # a loss of more than 2%
    result = check_declining_positions(positions)
    assert result.allowed == (not (2 * declining > len(moves)))
    assert result.reason
    if not result.allowed:
        assert "halted" in result.reason


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.lists(st.sampled_from([f"T{i}" for i in range(20)]), max_size=40),
)
def test_property_18_open_positions_never_exceed_the_limit(limit, attempts):
    """Property 18: at the limit a new ticker is rejected; a sequence of entries guarded by
    the check never holds more than `max_open_positions` tickers; adding to a holding is
    not a new position."""
    held: list[OpenPosition] = []
    for ticker in attempts:
        result = check_max_open_positions(held, ticker, max_open_positions=limit)
        tickers = {p.ticker for p in held}
        assert result.allowed == (ticker in tickers or len(tickers) < limit)
        assert result.reason
        if result.allowed and ticker not in tickers:
            held.append(position(ticker, D(10), D(10)))
        assert len({p.ticker for p in held}) <= limit


def test_exactly_half_declining_is_still_allowed():
    entry = D(100)
    positions = [position("A", entry, D(97)), position("B", entry, D(101))]
    assert check_declining_positions(positions).allowed
    positions.append(position("C", entry, D("97.99")))
    result = check_declining_positions(positions)
    assert not result.allowed and "A, C" in result.reason


def test_a_two_percent_loss_is_not_declining():
    assert check_declining_positions([position("A", D(100), D(98))]).allowed
    assert not check_declining_positions([position("A", D(100), D("97.99"))]).allowed
    assert check_declining_positions([]).allowed


def test_limit_reached_rejects_new_ticker_with_reason():
    held = [position(f"T{i}", D(10), D(10)) for i in range(10)]
    result = check_max_open_positions(held, "NEW")
    assert not result.allowed and "limit of 10" in result.reason
    assert check_max_open_positions(held, "T3").allowed
