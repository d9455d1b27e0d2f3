"""One trial: a full backtest through the one decision core with a trial's parameters, and its
outcome as the search keeps it (issue 16).

`evaluate` is what a Ray task runs. It is a plain function of plain values, so it runs the same
in a worker on another node, in this process, or in a test. The market arrays reach it from
the object store (zero-copy numpy views, read-only); the momentum signal's recommendations for
a pair of windows are computed once per worker and reused by every trial with that pair.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np

from services.trading.backtest import signals
from services.trading.backtest.backtester import BacktestData, Backtester
from services.trading.backtest.config import BacktestConfig, SignalSource
from services.trading.optimize.objective import Objective, TrialMetrics, daily_returns, trial_metrics
from services.trading.optimize.search_space import (
    SearchSpace,
    SearchSpaceError,
    apply_parameters,
    signal_windows,
)

COMPLETE, INFEASIBLE, FAILED = "complete", "infeasible", "failed"
STATES = (COMPLETE, INFEASIBLE, FAILED)


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """What a worker needs for one trial. `number` counts within its window (None: a search)."""

    number: int
    window_index: int | None
    params: Mapping[str, Any]
    config: BacktestConfig  # the period and every setting the parameters do not change
    space: SearchSpace
    objective: Objective
    keep_equity: bool = False  # the walk-forward's out-of-sample run: its equity is stitched


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """A finished trial. `state` is complete, infeasible (a rule or the signal's windows said
    no: `reason`) or failed (the backtest raised or failed part-way: `reason` is the error).
    `returns` has one daily return per session of the period (empty when failed)."""

    number: int
    window_index: int | None
    params: Mapping[str, Any]
    state: str
    value: float | None
    reason: str | None = None
    metrics: TrialMetrics | None = None
    returns: np.ndarray = field(default_factory=lambda: np.empty(0))
    equity: tuple[tuple[date, Decimal], ...] = ()
    node_id: str | None = None
    seconds: float = 0.0

    @property
    def counted(self) -> bool:
        """Ran to the end (feasible or not): its returns enter DSR and PBO."""
        return self.state != FAILED and self.returns.size > 0


def evaluate(data: BacktestData, spec: TrialSpec, node_id: str | None = None) -> TrialOutcome:
    """Run one trial. Never raises for a bad trial: a failure is a `failed` outcome."""
    started = time.perf_counter()

    def outcome(state: str, value: float | None, **more: Any) -> TrialOutcome:
        return TrialOutcome(
            spec.number,
            spec.window_index,
            dict(spec.params),
            state,
            value,
            node_id=node_id,
            seconds=time.perf_counter() - started,
            **more,
        )

    params = spec.space.normalise(spec.params)
    fast, slow = signal_windows(params)
    if fast >= slow:
        reason = f"the signal's fast window ({fast}) is not shorter than its slow one ({slow})"
        return outcome(INFEASIBLE, None, reason=reason)
    try:
        config = apply_parameters(spec.config, params)
        result = Backtester(_with_signal(data, config, fast, slow)).run(config)
    except (SearchSpaceError, ValueError, ArithmeticError) as exc:
        return outcome(FAILED, None, reason=f"{type(exc).__name__}: {exc}")
    if not result.completed:
        return outcome(FAILED, None, reason=result.error)
    metrics = trial_metrics(result)
    value = metrics.value(spec.objective)
    if math.isnan(value):
        return outcome(FAILED, None, reason=f"the {spec.objective.value} is not a number", metrics=metrics)
    return outcome(
        COMPLETE,
        value,
        metrics=metrics,
        returns=daily_returns(result),
        equity=result.equity_curve if spec.keep_equity else (),
    )


# Recommendations of the momentum signal by (data, universe, windows), kept per worker process:
# every trial with the same windows replays the same recommendations.
# The market is kept beside its recommendations so that its id cannot be reused while cached.
_SIGNALS: dict[tuple[int, tuple[int, ...], int, int], tuple[Any, list]] = {}
MAX_CACHED_SIGNALS = 16


def _with_signal(data: BacktestData, config: BacktestConfig, fast: int, slow: int) -> BacktestData:
    if config.signals is not SignalSource.MOMENTUM or data.recommendations is not None:
        return data
    market = data.market
    rows = tuple(market.index[t] for t in config.tickers if t in market.index) or tuple(
        range(len(market.tickers))
    )
    key = (id(market), rows, fast, slow)
    if key not in _SIGNALS:
        if len(_SIGNALS) >= MAX_CACHED_SIGNALS:
            _SIGNALS.pop(next(iter(_SIGNALS)))
        _SIGNALS[key] = (market, signals.momentum_recommendations(market, rows, fast, slow))
    return replace(data, recommendations=_SIGNALS[key][1])
