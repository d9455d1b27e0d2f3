"""Walk-forward analysis: search on one stretch of history, trade the winner on the next stretch
it has never seen, move on, and judge the strategy only by those unseen stretches.

A walk-forward run is a sequence of windows over the calendar's sessions. Each has a train
period, where the search picks its settings, and the test period right after it, where those
settings run out-of-sample. Rolling windows keep the train period's length and slide it by the
step; anchored windows always train from the first session, so the train period grows. The
test periods' equity curves, chained, are the strategy's out-of-sample record (R. Pardo, "The
Evaluation and Optimization of Trading Strategies", 2008, calls the ratio of out-of-sample to
in-sample performance the walk-forward efficiency).

This module plans the windows, stitches the test curves, and measures how performance degrades
and how steady the chosen parameters are. Pure: no I/O, no backtests.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from numbers import Real


@dataclass(frozen=True)
class WalkForwardWindow:
    """One window; every date is a session of the calendar given, both ends inclusive."""

    index: int
    train_start: date
    train_end: date
    test_start: date
    test_end: date


def plan_windows(
    sessions: Sequence[date],
    train_sessions: int,
    test_sessions: int,
    step_sessions: int | None = None,
    anchored: bool = False,
) -> list[WalkForwardWindow]:
    """The walk-forward windows over `sessions` (strictly increasing trading days).

    Window k tests the `test_sessions` sessions starting at session train_sessions + k·step and
    trains on the sessions just before it: the last `train_sessions` of them (rolling) or all
    of them from sessions[0] (anchored). The step defaults to `test_sessions`, so test windows
    tile the sessions without overlap; a step shorter than the test overlaps them, a longer one
    leaves gaps. A last test window that would run past the final session is dropped rather than
    shortened, so every test period has the same length.
    """
    for name, value in (("train_sessions", train_sessions), ("test_sessions", test_sessions)):
        _require_positive(name, value)
    step = test_sessions if step_sessions is None else step_sessions
    _require_positive("step_sessions", step)
    days = list(sessions)
    if any(b <= a for a, b in zip(days, days[1:])):
        raise ValueError("sessions must be strictly increasing dates")
    if len(days) < train_sessions + test_sessions:
        raise ValueError(
            f"sessions has {len(days)} sessions, fewer than train_sessions + test_sessions = "
            f"{train_sessions + test_sessions}"
        )
    windows = []
    test_start = train_sessions
    while test_start + test_sessions <= len(days):
        train_start = 0 if anchored else test_start - train_sessions
        windows.append(
            WalkForwardWindow(
                index=len(windows),
                train_start=days[train_start],
                train_end=days[test_start - 1],
                test_start=days[test_start],
                test_end=days[test_start + test_sessions - 1],
            )
        )
        test_start += step
    return windows


def stitch_equity(
    segments: Sequence[Sequence[tuple[date, Decimal]]], initial_capital: Decimal
) -> list[tuple[date, Decimal]]:
    """The test periods' equity curves chained into one out-of-sample curve.

    Each segment is a curve that starts from its own capital (its first point). Its growth,
    value / first value, is applied to where the previous segment ended (to `initial_capital`
    for the first), so returns compound across windows whatever capital each test ran with. A
    segment whose first date is the previous segment's last date adds no second point there.
    Values are exact Decimal arithmetic, not rounded to cents. Dates must increase across the
    whole curve: overlapping test windows cannot be stitched.
    """
    if not initial_capital > 0:
        raise ValueError(f"initial_capital must be positive, got {initial_capital!r}")
    stitched: list[tuple[date, Decimal]] = []
    capital = Decimal(initial_capital)
    for k, segment in enumerate(segments):
        if not segment:
            raise ValueError(f"segment {k} is empty")
        base = Decimal(segment[0][1])
        if not base > 0:
            raise ValueError(f"segment {k} starts at {base!r}; its starting equity must be positive")
        for i, (day, value) in enumerate(segment):
            if i == 0 and stitched and stitched[-1][0] == day:
                continue
            if stitched and day <= stitched[-1][0]:
                raise ValueError(
                    f"segment {k} goes back to {day} after {stitched[-1][0]}: dates must increase"
                )
            stitched.append((day, capital * Decimal(value) / base))
        capital = stitched[-1][1]
    return stitched


def degradation(in_sample: float, out_of_sample: float) -> float | None:
    """Walk-forward efficiency: out-of-sample over in-sample performance (1.0 kept it all, 0.5
    half, below 0 lost money out-of-sample). None when in-sample performance is not positive
    (or either is not finite, or the ratio overflows): a ratio to a loss or to zero says nothing
    about what was kept."""
    if not math.isfinite(in_sample) or not math.isfinite(out_of_sample) or in_sample <= 0:
        return None
    ratio = out_of_sample / in_sample
    return ratio if math.isfinite(ratio) else None


@dataclass(frozen=True)
class ParameterStability:
    """How steady one parameter's chosen value was across the walk-forward windows."""

    name: str
    values: tuple  # the chosen value in each window that has the parameter, in window order
    distinct: int
    modal_value: object  # the most frequent value; on ties, the one chosen first
    modal_share: float  # the share of windows that chose it
    coefficient_of_variation: float | None  # population stdev / |mean|; None if not numeric or mean 0


def parameter_stability(chosen: Sequence[Mapping[str, object]]) -> list[ParameterStability]:
    """Stability of every parameter in the settings chosen per window (one mapping per window),
    in the order parameters first appear. A window without a parameter (a conditional one) is
    left out of its values. The coefficient of variation is for numeric parameters only
    (booleans are choices, not numbers)."""
    names = list(dict.fromkeys(name for params in chosen for name in params))
    result = []
    for name in names:
        values = tuple(params[name] for params in chosen if name in params)
        modal_value, modal_count = Counter(values).most_common(1)[0]
        result.append(
            ParameterStability(
                name=name,
                values=values,
                distinct=len(set(values)),
                modal_value=modal_value,
                modal_share=modal_count / len(values),
                coefficient_of_variation=_coefficient_of_variation(values),
            )
        )
    return result


def _coefficient_of_variation(values: tuple) -> float | None:
    if not all(isinstance(v, Real | Decimal) and not isinstance(v, bool) for v in values):
        return None
    numbers = [float(v) for v in values]
    mean = statistics.fmean(numbers)
    if mean == 0 or not all(math.isfinite(x) for x in numbers):
        return None
    return statistics.pstdev(numbers) / abs(mean)


def _require_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
