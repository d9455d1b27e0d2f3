"""Objectives and constraints: Sortino and Calmar against empyrical's reference formulas, the
constraints' verdicts, and the figures of a real backtest."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import empyrical
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.trading.backtest import BacktestConfig, Backtester, sample_backtest_data
from services.trading.optimize.objective import (
    Constraints,
    Objective,
    ObjectiveError,
    TrialMetrics,
    calmar_ratio,
    daily_returns,
    objective,
    sortino_ratio,
    trial_metrics,
)

returns_lists = st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=3, max_size=300)


@given(returns_lists)
def test_sortino_is_empyricals(returns: list[float]) -> None:
    r = np.asarray(returns)
    if not (np.minimum(r, 0) ** 2).mean() > 1e-12:
        return  # no downside: empyrical says inf or nan, our convention is stated in the module
    assert sortino_ratio(r) == pytest.approx(empyrical.sortino_ratio(r), rel=1e-9, abs=1e-9)


@given(st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=3, max_size=300))
def test_calmar_is_empyricals(returns: list[float]) -> None:
    r = np.asarray([0.01, *returns])  # a first gain: empyrical measures drawdown from the first value
    equity = np.cumprod(1 + r)
    drawdown = float(np.max(1 - equity / np.maximum.accumulate(equity)))
    if drawdown < 1e-9:
        return
    expected = empyrical.calmar_ratio(r)
    assert calmar_ratio(float(equity[-1] - 1), len(r), drawdown) == pytest.approx(expected, rel=1e-7)


def test_edge_cases_follow_the_trackers_conventions() -> None:
    assert sortino_ratio(np.array([0.01])) == 0.0
    assert sortino_ratio(np.array([0.01, 0.02])) == math.inf
    assert sortino_ratio(np.array([0.0, 0.0])) == 0.0
    assert calmar_ratio(0.1, 252, 0.0) == math.inf and calmar_ratio(-0.1, 252, 0.0) == 0.0


def test_constraints_say_why_a_trial_is_infeasible() -> None:
    metrics = TrialMetrics(0.1, 1.0, 1.2, 0.8, 0.25, 1.5, 0.5, 4, "11000")
    assert Constraints().reason(metrics) is None and Constraints().violations(metrics) == {}
    rules = Constraints(min_trades=10, max_drawdown=0.2)
    assert (
        rules.reason(metrics)
        == "4 trades, fewer than the 10 required; max drawdown 25.00% above the 20.00% allowed"
    )
    assert rules.violations(metrics) == pytest.approx({"min_trades": 0.6, "max_drawdown": 0.25})
    held = Constraints(min_trades=4, max_drawdown=0.3)
    assert held.reason(metrics) is None and all(v <= 0 for v in held.violations(metrics).values())
    with pytest.raises(ObjectiveError, match="max_drawdown must be a fraction"):
        Constraints(max_drawdown=1.5)
    with pytest.raises(ObjectiveError, match="unknown objective 'alpha'"):
        objective("alpha")


def test_the_metrics_of_a_real_backtest() -> None:
    start, end = date(2005, 1, 3), date(2005, 12, 30)
    config = BacktestConfig(
        start_date=start,
        end_date=end,
        initial_capital=Decimal(10_000),
        risk_tier="aggressive",
        tickers=("AAPL", "MSFT"),
        signals="momentum",
    )
    result = Backtester(sample_backtest_data(start, end, config.tickers)).run(config)
    metrics = trial_metrics(result)
    returns = daily_returns(result)
    assert returns.size == result.sessions
    assert metrics.value(Objective.SHARPE) == result.metrics.sharpe_ratio
    assert (
        metrics.total_return == result.metrics.total_return
        and metrics.trade_count == result.metrics.trade_count
    )
    assert metrics.sortino == pytest.approx(empyrical.sortino_ratio(returns))
    assert TrialMetrics.from_json(metrics.to_json()) == metrics
