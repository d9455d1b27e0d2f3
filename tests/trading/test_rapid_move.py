"""Rapid price move detection (seed task 13.1): more than 5% within 15 minutes re-evaluates
the position at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.rapid_move import (
    PricePoint,
    RapidMoveSettings,
    detect_rapid_move,
    detect_rapid_moves,
)

D = Decimal
NOW = datetime(2024, 6, 3, 15, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)

prices = st.decimals(min_value=D("1"), max_value=D("1000"), places=2, allow_nan=False, allow_infinity=False)
points = st.lists(st.tuples(st.integers(0, 40 * 60), prices), min_size=0, max_size=20).map(
    lambda items: [PricePoint(NOW - timedelta(seconds=age), price) for age, price in items]
)


def _points(*minutes_and_prices: tuple[int, str]) -> list[PricePoint]:
    return [PricePoint(NOW - timedelta(minutes=m), D(p)) for m, p in minutes_and_prices]


@settings(max_examples=400, deadline=None)
@given(points)
def test_a_move_is_reported_exactly_when_some_window_price_is_more_than_5pct_from_the_latest(history) -> None:
    """Stated independently: within [now - 15 min, now], the latest price differs from some
    earlier price in that window by more than 5% of the earlier one."""
    window = sorted((p for p in history if NOW - WINDOW <= p.at <= NOW), key=lambda p: p.at)
    move = detect_rapid_move("XYZ", history, NOW)
    if len(window) < 2:
        assert move is None
        return
    latest = window[-1]
    expected = any(abs(latest.price - p.price) > D("0.05") * p.price for p in window[:-1])
    assert (move is not None) == expected
    if move is not None:
        assert move.to_price == latest.price and move.at == latest.at
        assert abs(move.move) > D("0.05") and move.move == (move.to_price - move.from_price) / move.from_price


def test_falls_and_rises_both_count_and_the_threshold_is_strict() -> None:
    assert detect_rapid_move("XYZ", _points((10, "100"), (0, "94.99")), NOW).move < 0
    assert detect_rapid_move("XYZ", _points((10, "100"), (0, "105.01")), NOW).move > 0
    assert detect_rapid_move("XYZ", _points((10, "100"), (0, "105")), NOW) is None
    assert detect_rapid_move("XYZ", _points((10, "100"), (0, "95")), NOW) is None


def test_only_the_last_fifteen_minutes_count() -> None:
    assert detect_rapid_move("XYZ", _points((16, "100"), (0, "90")), NOW) is None
    assert detect_rapid_move("XYZ", _points((15, "100"), (0, "90")), NOW) is not None
    wider = RapidMoveSettings(window=timedelta(minutes=30))
    assert detect_rapid_move("XYZ", _points((16, "100"), (0, "90")), NOW, settings=wider) is not None


def test_a_move_already_acted_on_is_not_reported_again() -> None:
    history = _points((10, "100"), (5, "90"))
    assert detect_rapid_move("XYZ", history, NOW, since=NOW - timedelta(minutes=6)) is not None
    assert detect_rapid_move("XYZ", history, NOW, since=NOW - timedelta(minutes=5)) is None


def test_the_reason_names_the_move_and_the_many_tickers_form_sorts() -> None:
    moves = detect_rapid_moves(
        {
            "ZZZ": _points((5, "10"), (0, "12")),
            "AAA": _points((5, "10"), (0, "9")),
            "MMM": _points((5, "10"), (0, "10.1")),
        },
        NOW,
    )
    assert [m.ticker for m in moves] == ["AAA", "ZZZ"]
    assert "AAA moved -10.00%" in moves[0].reason and "re-evaluated at once" in moves[0].reason


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        detect_rapid_move("XYZ", [], datetime(2024, 6, 3, 15, 0))
