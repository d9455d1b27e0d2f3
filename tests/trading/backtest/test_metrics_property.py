"""Property 36 (seed task 19.2): for the same trades, the backtester's metrics equal the
performance tracker's. Checked twice: on arbitrary trades and equity curves, and on whatever
trades and equity a backtest of random bars and recommendations produces; the second also checks
that the account adds up (final value = capital + closed P&L + open positions' P&L)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.trading.backtest import CommissionModel
from services.trading.backtest.results import summarize
from services.trading.core import performance_tracker
from services.trading.core.models import ClosedTrade, PortfolioState
from tests.trading.backtest.bars import WARMUP, flat, market, rec, run

AT = datetime(2024, 3, 1, 21, tzinfo=UTC)
money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2)


@st.composite
def closed_trades(draw) -> ClosedTrade:
    entry, exit_, quantity = draw(money), draw(money), draw(st.integers(1, 500))
    fees = draw(st.sampled_from([Decimal(0), Decimal("1.5")]))
    return ClosedTrade("XYZ", entry, exit_, Decimal(quantity), AT - timedelta(days=3), AT, fees=fees)


@given(
    trades=st.lists(closed_trades(), max_size=30),
    equity=st.lists(
        st.decimals(min_value=Decimal(1), max_value=Decimal(10**6), places=2), min_size=1, max_size=90
    ),
    capital=st.decimals(min_value=Decimal(100), max_value=Decimal(10**6), places=2),
)
@settings(max_examples=150, deadline=None)
def test_backtest_metrics_equal_the_performance_trackers_on_the_same_trades(trades, equity, capital) -> None:
    metrics = summarize(capital, equity, trades, PortfolioState((), equity[-1]), AT)
    curve = [capital, *equity]
    returns = performance_tracker.daily_returns(curve)
    assert metrics.trade_count == len(trades)
    assert metrics.win_rate == performance_tracker.win_rate(trades)
    assert metrics.profit_factor == performance_tracker.profit_factor(trades)
    assert metrics.max_drawdown == performance_tracker.max_drawdown(curve)
    assert metrics.sharpe_ratio_30d == performance_tracker.sharpe_ratio(returns)
    assert metrics.sharpe_ratio == performance_tracker.sharpe_ratio(returns, window=len(returns))
    assert metrics.total_return == float(equity[-1] / capital - 1)


def _walk(seed: int, n: int, start: float) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(seed)
    closes = start * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    bars, previous = [], start
    for close in closes:
        o, c = round(previous * math.exp(rng.normal(0, 0.01)), 2), round(float(close), 2)
        h, l = (
            round(max(o, c) * (1 + abs(rng.normal(0, 0.01))), 2),
            round(min(o, c) * (1 - abs(rng.normal(0, 0.01))), 2),
        )
        bars.append((o, h, l, c))
        previous = c
    return bars


@given(
    seed=st.integers(0, 10_000),
    signals=st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.integers(WARMUP - 1, WARMUP + 35),
            st.sampled_from(["buy", "sell"]),
            st.floats(0.55, 1.0),
        ),
        max_size=12,
    ),
    commission=st.sampled_from(["0", "1"]),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_backtests_own_trades_give_the_trackers_metrics_and_the_account_adds_up(
    seed, signals, commission
) -> None:
    n = WARMUP + 40
    bars = {"A": flat(100) + _walk(seed, n - WARMUP, 100), "B": flat(40) + _walk(seed + 1, n - WARMUP, 40)}
    data = market(bars)
    recs = [rec(i, t, s, a, round(c, 3)) for i, (t, s, a, c) in enumerate(signals, start=1)]
    result = run(data, recs, commission=CommissionModel(per_order=Decimal(commission)), capital="20000")
    assert result.completed, result.error
    trades = [t.closed_trade() for t in result.trades]
    equity = [value for _, value in result.equity_curve]
    curve = [Decimal(20000), *equity]
    m = result.metrics
    assert m.trade_count == len(trades)
    assert m.win_rate == performance_tracker.win_rate(trades)
    assert m.profit_factor == performance_tracker.profit_factor(trades)
    assert m.max_drawdown == performance_tracker.max_drawdown(curve)
    assert m.sharpe_ratio_30d == performance_tracker.sharpe_ratio(performance_tracker.daily_returns(curve))
    last = len(data.sessions) - 1
    open_pnl = sum(
        (
            p.quantity * (data.last_close(data.index[p.ticker], last) - p.entry_price) - p.fees
            for p in result.open_positions
        ),
        Decimal(0),
    )
    expected = Decimal(20000) + sum((t.pnl for t in trades), Decimal(0)) + open_pnl
    assert abs(m.final_value - expected) < Decimal("1e-15")  # equal to Decimal's 28 significant digits
