"""Walk-forward windows, the stitched out-of-sample curve, degradation and parameter stability,
checked against properties stated independently of the implementation: windows as index
arithmetic over the sessions, total return as an exact product of fractions."""

from __future__ import annotations

import statistics
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.optimize.walk_forward import (
    ParameterStability,
    WalkForwardWindow,
    degradation,
    parameter_stability,
    plan_windows,
    stitch_equity,
)

START = date(2015, 1, 2)


@st.composite
def calendars(draw) -> list[date]:
    """Strictly increasing sessions with irregular gaps, as a trading calendar has."""
    gaps = draw(st.lists(st.integers(1, 4), min_size=1, max_size=300))
    days, day = [], START
    for gap in gaps:
        days.append(day)
        day += timedelta(days=gap)
    return days


@given(
    sessions=calendars(),
    train=st.integers(1, 80),
    test=st.integers(1, 40),
    step=st.none() | st.integers(1, 60),
    anchored=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_windows_walk_the_sessions_in_order(
    sessions: list[date], train: int, test: int, step: int | None, anchored: bool
) -> None:
    if len(sessions) < train + test:
        with pytest.raises(ValueError, match="sessions"):
            plan_windows(sessions, train, test, step, anchored)
        return
    windows = plan_windows(sessions, train, test, step, anchored)
    position = {day: i for i, day in enumerate(sessions)}
    stride = test if step is None else step
    assert windows, "enough sessions for one window always gives one"
    for k, w in enumerate(windows):
        assert w.index == k
        assert {w.train_start, w.train_end, w.test_start, w.test_end} <= set(sessions)
        # train precedes test, and the test starts on the session right after the train ends
        assert w.train_start <= w.train_end < w.test_start <= w.test_end
        assert position[w.test_start] == position[w.train_end] + 1
        assert position[w.test_end] - position[w.test_start] + 1 == test
        train_length = position[w.train_end] - position[w.train_start] + 1
        if anchored:
            assert w.train_start == sessions[0]
            assert train_length == train + k * stride
        else:
            assert train_length == train
        assert position[w.test_start] == train + k * stride
    for a, b in zip(windows, windows[1:]):
        assert position[b.test_start] - position[a.test_start] == stride
        if stride >= test:
            assert a.test_end < b.test_start  # disjoint
    # the next window would run past the last session: the partial one is dropped
    assert position[windows[-1].test_start] + stride + test > len(sessions)


def test_rolling_and_anchored_windows_by_hand() -> None:
    days = [START + timedelta(days=i) for i in range(10)]
    assert plan_windows(days, 4, 2) == [
        WalkForwardWindow(0, days[0], days[3], days[4], days[5]),
        WalkForwardWindow(1, days[2], days[5], days[6], days[7]),
        WalkForwardWindow(2, days[4], days[7], days[8], days[9]),
    ]
    anchored = plan_windows(days, 4, 3, anchored=True)
    assert anchored == [
        WalkForwardWindow(0, days[0], days[3], days[4], days[6]),
        WalkForwardWindow(1, days[0], days[6], days[7], days[9]),
    ]
    # 10 sessions, train 5, test 3: the second test would need sessions 8-10, one too many.
    assert [w.test_end for w in plan_windows(days, 5, 3)] == [days[7]]


@pytest.mark.parametrize(
    ("train", "test", "step", "name"),
    [
        (0, 5, None, "train_sessions"),
        (5, 0, None, "test_sessions"),
        (5, 5, 0, "step_sessions"),
        (5, -1, None, "test_sessions"),
        (5, 5, -2, "step_sessions"),
        (True, 5, None, "train_sessions"),
    ],
)
def test_window_lengths_must_be_positive(train: int, test: int, step: int | None, name: str) -> None:
    days = [START + timedelta(days=i) for i in range(50)]
    with pytest.raises(ValueError, match=name):
        plan_windows(days, train, test, step)


def test_sessions_must_increase_and_suffice() -> None:
    days = [START + timedelta(days=i) for i in range(8)]
    with pytest.raises(ValueError, match="sessions"):
        plan_windows(days, 5, 4)
    with pytest.raises(ValueError, match="increasing"):
        plan_windows(days[::-1], 2, 2)


equity = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**7), places=2)


@st.composite
def segment_curves(draw) -> list[list[tuple[date, Decimal]]]:
    """Consecutive test periods' equity curves, each starting from its own capital."""
    segments, day = [], START
    for _ in range(draw(st.integers(1, 6))):
        values = draw(st.lists(equity, min_size=1, max_size=15))
        segment = []
        for value in values:
            segment.append((day, value))
            day += timedelta(days=draw(st.integers(1, 3)))
        segments.append(segment)
    return segments


@given(segments=segment_curves(), capital=equity)
@settings(max_examples=200, deadline=None)
def test_the_stitched_curve_compounds_every_segments_return(
    segments: list[list[tuple[date, Decimal]]], capital: Decimal
) -> None:
    stitched = stitch_equity(segments, capital)
    growth = Fraction(1)
    for segment in segments:
        growth *= Fraction(segment[-1][1]) / Fraction(segment[0][1])
    assert float(Fraction(stitched[-1][1]) / Fraction(capital) / growth) == pytest.approx(1, rel=1e-20)
    assert all(isinstance(value, Decimal) for _, value in stitched)
    assert [day for day, _ in stitched] == [day for segment in segments for day, _ in segment]
    assert stitched[0][1] == capital
    # within a segment the curve moves exactly as the segment does
    i = 0
    for segment in segments:
        for (_, value), (_, out) in zip(segment, stitched[i : i + len(segment)]):
            ratio = Fraction(out) / Fraction(value)
            first = Fraction(stitched[i][1]) / Fraction(segment[0][1])
            assert float(ratio / first) == pytest.approx(1, rel=1e-20)
        i += len(segment)


def test_stitching_by_hand_and_a_shared_boundary_date() -> None:
    d = [START + timedelta(days=i) for i in range(5)]
    first = [(d[0], Decimal(100)), (d[1], Decimal(110))]  # +10%
    second = [(d[1], Decimal(5000)), (d[2], Decimal(4500)), (d[3], Decimal(5400))]  # -10%, +20%
    assert stitch_equity([first, second], Decimal(1000)) == [
        (d[0], Decimal(1000)),
        (d[1], Decimal(1100)),
        (d[2], Decimal(990)),
        (d[3], Decimal(1188)),
    ]


def test_stitching_refuses_what_it_cannot_chain() -> None:
    d = [START + timedelta(days=i) for i in range(5)]
    with pytest.raises(ValueError, match="segment 1 is empty"):
        stitch_equity([[(d[0], Decimal(1))], []], Decimal(10))
    with pytest.raises(ValueError, match="positive"):
        stitch_equity([[(d[0], Decimal(0)), (d[1], Decimal(1))]], Decimal(10))
    with pytest.raises(ValueError, match="dates must increase"):
        stitch_equity([[(d[2], Decimal(1))], [(d[1], Decimal(1))]], Decimal(10))
    with pytest.raises(ValueError, match="initial_capital"):
        stitch_equity([[(d[0], Decimal(1))]], Decimal(0))
    assert stitch_equity([], Decimal(10)) == []


@given(
    in_sample=st.floats(-1e6, 1e6) | st.sampled_from([0.0, float("inf"), float("-inf")]),
    out_of_sample=st.floats(-10, 10),
)
def test_degradation_is_the_share_kept_out_of_sample(in_sample: float, out_of_sample: float) -> None:
    ratio = degradation(in_sample, out_of_sample)
    if not 0 < in_sample < float("inf"):
        assert ratio is None
    elif ratio is not None:
        assert ratio * in_sample == pytest.approx(out_of_sample, abs=1e-9)
    else:  # only a ratio too large for a float
        assert abs(out_of_sample) / 1e300 > in_sample


def test_degradation_by_hand() -> None:
    assert degradation(2.0, 1.0) == 0.5
    assert degradation(1.5, -0.3) == pytest.approx(-0.2)
    assert degradation(0.0, 1.0) is None
    assert degradation(-1.0, -2.0) is None


def test_parameter_stability_by_hand() -> None:
    chosen = [
        {"atr_multiplier": 2.0, "tier": "high", "trailing": True},
        {"atr_multiplier": 3.0, "tier": "low", "trailing": True},
        {"atr_multiplier": 2.0, "tier": "low", "trailing": False, "window": 20},
        {"atr_multiplier": 1.0, "tier": "high", "trailing": True},
    ]
    by_name = {p.name: p for p in parameter_stability(chosen)}
    assert list(by_name) == ["atr_multiplier", "tier", "trailing", "window"]
    atr = by_name["atr_multiplier"]
    assert atr == ParameterStability(
        "atr_multiplier",
        (2.0, 3.0, 2.0, 1.0),
        3,
        2.0,
        0.5,
        statistics.pstdev([2.0, 3.0, 2.0, 1.0]) / 2.0,
    )
    assert by_name["tier"].modal_value == "high"  # a tie: the value chosen first
    assert by_name["tier"].coefficient_of_variation is None
    assert by_name["trailing"].coefficient_of_variation is None  # booleans are choices
    assert by_name["trailing"].modal_share == 0.75
    assert by_name["window"].values == (20,)
    assert by_name["window"].coefficient_of_variation == 0.0


@given(values=st.lists(st.integers(-5, 5), min_size=1, max_size=30))
def test_parameter_stability_counts_what_was_chosen(values: list[int]) -> None:
    (result,) = parameter_stability([{"x": v} for v in values])
    counts = {v: values.count(v) for v in values}
    assert result.values == tuple(values)
    assert result.distinct == len(counts)
    assert counts[result.modal_value] == max(counts.values())
    assert result.modal_share == max(counts.values()) / len(values)
    mean = sum(values) / len(values)
    if mean == 0:
        assert result.coefficient_of_variation is None
    else:
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        assert result.coefficient_of_variation == pytest.approx(spread / abs(mean))
