"""Performance metrics (seed tasks 15.3-15.5, docs/contracts.md section 6)."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.models import ClosedTrade, OpenPosition, PortfolioState
from services.trading.core.performance_tracker import (
    compute_metrics,
    current_drawdown,
    daily_returns,
    drawdowns,
    max_drawdown,
    profit_factor,
    sharpe_ratio,
    trade_stats,
    win_rate,
)

T0 = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
D = Decimal


def trade(entry, exit_, qty=1, micro=False, minutes=60) -> ClosedTrade:
    return ClosedTrade(
        ticker="XYZ",
        entry_price=D(entry),
        exit_price=D(exit_),
        quantity=D(qty),
        entry_at=T0,
        exit_at=T0 + timedelta(minutes=minutes),
        is_micro_trade=micro,
    )


trades_st = st.lists(
    st.builds(trade, st.integers(1, 200), st.integers(1, 200), st.integers(1, 50), st.booleans()),
    max_size=40,
)
# Whole basis points: distinct returns stay distinct after rounding, so the reference and
# the code cannot disagree about "zero variance" on values one ulp apart.
returns_st = st.lists(st.integers(-2000, 2000).map(lambda bp: bp / 10_000), max_size=60)
equity_st = st.lists(st.floats(1, 1e6, allow_nan=False), max_size=80)


@settings(max_examples=200, deadline=None)
@given(trades_st)
def test_property_26_win_rate_and_profit_factor(trades):
    """Property 26: win_rate = wins / trades (win: pnl > 0); profit_factor = gross profit /
    gross loss, infinite with no losses, 0 with no trades."""
    pnls = [(t.exit_price - t.entry_price) * t.quantity for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [-p for p in pnls if p < 0]
    assert win_rate(trades) == (len(wins) / len(pnls) if pnls else 0.0)
    if not pnls:
        assert profit_factor(trades) == 0.0
    elif not losses:
        assert profit_factor(trades) == (math.inf if wins else 0.0)
    else:
        assert profit_factor(trades) == pytest.approx(float(sum(wins)) / float(sum(losses)))


@settings(max_examples=200, deadline=None)
@given(returns_st)
def test_property_26_sharpe_formula(returns):
    """Property 26: Sharpe = mean / sample stdev * sqrt(252) over the trailing 30 returns;
    fewer than 2 or all-equal returns give 0.0 (defined, finite)."""
    tail = returns[-30:]
    got = sharpe_ratio(returns)
    assert math.isfinite(got)
    if len(tail) < 2 or len(set(tail)) == 1:
        assert got == 0.0
    else:
        expected = statistics.fmean(tail) / statistics.stdev(tail) * math.sqrt(252)
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(equity_st)
def test_property_26_max_drawdown_is_largest_fall_from_a_running_peak(equity):
    """Property 26: max drawdown = max over t of (max(equity[:t+1]) - equity[t]) / that peak."""
    worst, peak = 0.0, -math.inf
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak)
    assert max_drawdown(equity) == pytest.approx(worst, abs=1e-12)
    assert 0.0 <= max_drawdown(equity) < 1.0
    assert current_drawdown(equity) <= max_drawdown(equity) + 1e-15


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-1e9, max_value=1e12, allow_nan=False), max_size=40))
def test_the_current_drawdown_is_the_last_of_the_drawdowns_to_the_bit(equity):
    """The close reads the current drawdown alone (not vectorised): the same number, bit for
    bit, as the vectorised `drawdowns` gives for the last point."""
    got = current_drawdown(equity)
    expected = float(drawdowns(equity)[-1]) if equity else 0.0
    assert math.copysign(1, got) == math.copysign(1, expected) and got == expected


@settings(max_examples=150, deadline=None)
@given(trades_st, st.lists(st.booleans(), max_size=5))
def test_property_33_micro_trade_metrics_tracked_separately(trades, micro_flags):
    """Property 33: micro-trade stats are computed from micro-trades alone, and the standard
    metrics are the same whether or not micro-trades are present."""
    portfolio = PortfolioState(
        positions=tuple(position(f"P{i}", micro=flag) for i, flag in enumerate(micro_flags)), cash=D(1000)
    )
    kwargs = dict(portfolio=portfolio, equity_curve=[1000, 1010], start_of_day_value=D(1000), computed_at=T0)
    report = compute_metrics(closed_trades=trades, **kwargs)
    standard_only = compute_metrics(closed_trades=[t for t in trades if not t.is_micro_trade], **kwargs)
    assert report.metrics == standard_only.metrics

    micro = [t for t in trades if t.is_micro_trade]
    pnls = [(t.exit_price - t.entry_price) * t.quantity for t in micro]
    assert report.micro.trade_count == len(micro)
    assert report.micro.win_count == sum(1 for p in pnls if p > 0)
    assert report.micro.loss_count == sum(1 for p in pnls if p < 0)
    assert report.micro.realized_pnl == sum(pnls, D(0))
    assert report.micro.unrealized_pnl == sum(
        (p.unrealized_pnl for p in portfolio.positions if p.is_micro_trade), D(0)
    )
    standard_pnls = [(t.exit_price - t.entry_price) * t.quantity for t in trades if not t.is_micro_trade]
    assert report.metrics.trade_count == len(standard_pnls)
    assert report.metrics.realized_pnl == sum(standard_pnls, D(0))


def position(ticker, micro=False, entry="10", price="11", qty="3") -> OpenPosition:
    return OpenPosition(
        ticker=ticker,
        quantity=D(qty),
        entry_price=D(entry),
        current_price=D(price),
        sector="Tech",
        stop_loss_price=D(entry) - 1,
        take_profit_price=D(entry) + 2,
        signal_confidence=D("0.7"),
        is_micro_trade=micro,
    )


def test_sharpe_with_zero_variance_is_defined():
    assert sharpe_ratio([0.01] * 30) == 0.0
    assert sharpe_ratio([0.0] * 5) == 0.0
    assert sharpe_ratio([]) == 0.0 and sharpe_ratio([0.02]) == 0.0
    flat = daily_returns([D(100)] * 31)
    assert sharpe_ratio(flat) == 0.0


def test_sharpe_uses_only_the_trailing_30_returns():
    old = [-0.05, 0.07] * 20
    recent = [0.01, 0.02, 0.0] * 10
    assert sharpe_ratio(old + recent) == pytest.approx(sharpe_ratio(recent))


def test_compute_metrics_fills_every_field():
    positions = (position("A", entry="10", price="12"), position("B", micro=True, entry="10", price="9"))
    portfolio = PortfolioState(positions=positions, cash=D("900"), reserve_pool=D("100"))
    trades = [trade(10, 12, 5), trade(10, 9, 5), trade(10, 10, 1), trade(10, 11, 10, micro=True)]
    report = compute_metrics(
        portfolio=portfolio,
        closed_trades=trades,
        equity_curve=[D(1000), D(1100), D(990)],
        start_of_day_value=D(950),
        computed_at=T0,
    )
    m = report.metrics
    assert m.total_portfolio_value == D("963") and m.active_pool == D("863") and m.reserve_pool == D("100")
    assert m.daily_pnl == D("13")
    assert (m.trade_count, m.win_count, m.loss_count) == (3, 1, 1)
    assert m.win_rate == pytest.approx(1 / 3)
    assert (m.avg_win, m.avg_loss) == (D(10), D(-5))
    assert m.profit_factor == 2.0
    assert m.realized_pnl == D(5) and m.unrealized_pnl == D(6)
    assert m.max_drawdown == pytest.approx(0.1245454545)  # 1100 -> 963 (today's value counts)
    assert m.current_drawdown == pytest.approx(137 / 1100)
    assert m.sharpe_ratio == pytest.approx(sharpe_ratio([0.1, -0.1]))
    assert m.portfolio_heat == portfolio.portfolio_heat and m.computed_at == T0
    assert (report.micro.trade_count, report.micro.realized_pnl, report.micro.unrealized_pnl) == (
        1,
        D(10),
        D(-3),
    )


def test_no_trades_no_history():
    report = compute_metrics(
        portfolio=PortfolioState((), D(500)),
        closed_trades=[],
        equity_curve=[],
        start_of_day_value=D(500),
        computed_at=T0,
    )
    m = report.metrics
    assert (m.win_rate, m.profit_factor, m.sharpe_ratio, m.max_drawdown) == (0.0, 0.0, 0.0, 0.0)
    assert trade_stats([]).trade_count == 0


# --- agreement with a well-known library on real returns ---------------------------------

STOCKS = Path(__import__("bokeh_sampledata").__file__).parent / "_data" / "stocks.csv.gz"


@pytest.fixture(scope="module")
def real_closes():
    import pandas as pd

    frame = pd.read_csv(STOCKS, parse_dates=["Date"])
    return (
        frame.pivot(index="Date", columns="Ticker", values="Close")
        .sort_index()[["AAPL", "IBM", "MSFT"]]
        .dropna()
    )


def test_real_closes_agree_with_pandas(real_closes):
    """Real daily closes (bokeh_sampledata): our Sharpe and drawdown equal the textbook
    pandas computations (pct_change; mean/std with pandas' default ddof=1; cummax)."""
    for ticker in real_closes:
        closes = real_closes[ticker]
        returns = closes.pct_change().dropna()
        expected_sharpe = returns.tail(30).mean() / returns.tail(30).std() * math.sqrt(252)
        assert sharpe_ratio(daily_returns(closes.tolist())) == pytest.approx(expected_sharpe, rel=1e-9)
        peak = closes.cummax()
        assert max_drawdown(closes.tolist()) == pytest.approx(((peak - closes) / peak).max(), rel=1e-12)


def test_real_closes_agree_with_empyrical(real_closes):
    """Same data against empyrical. empyrical reports drawdown as a negative
    number; ours is the positive fraction docs/contracts.md asks for, so they agree up to sign. Its
    sharpe_ratio on the last 30 returns is the same formula (ddof=1, sqrt(252), rf 0)."""
    import empyrical

    for ticker in real_closes:
        closes = real_closes[ticker]
        returns = closes.pct_change().dropna()
        ours = daily_returns(closes.tolist())
        np.testing.assert_allclose(ours, returns.to_numpy(), rtol=1e-12)
        assert sharpe_ratio(ours) == pytest.approx(empyrical.sharpe_ratio(returns.tail(30)), rel=1e-9)
        assert max_drawdown(closes.tolist()) == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
