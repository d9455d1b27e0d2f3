"""Performance metrics (seed task 15.3, docs/contracts.md section 6).

The formulas, each a module-level pure function:
- daily returns: `equity[t] / equity[t-1] - 1` of end-of-day equity;
- Sharpe: `mean / std(ddof=1) * sqrt(252)` of the trailing 30 daily returns, risk-free 0;
  fewer than 2 returns, or returns that are all equal (zero variance), give 0.0;
- max drawdown: the largest `(peak - value) / peak` over the series, a positive fraction;
- win rate: wins / closed trades, a win being `pnl > 0`; 0.0 with no trades. A breakeven
  trade counts in the denominator but is neither a win nor a loss;
- profit factor: gross profit / gross loss; infinite with no losses, 0.0 with no trades.

Micro-trades (seed task 17, property 33) are kept apart: the trade-level fields of
`PerformanceMetrics` (counts, win rate, averages, profit factor, realized and unrealized P&L)
cover standard trades and positions only, and micro-trades get their own `TradeStats`.
Account-level fields (value, pools, daily P&L, Sharpe, drawdowns, heat) describe the one
shared account and so include everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np

from services.trading.core.models import ZERO, ClosedTrade, OpenPosition, PerformanceMetrics, PortfolioState

TRADING_DAYS_PER_YEAR = 252
SHARPE_WINDOW = 30

Number = float | int | Decimal


def daily_returns(equity: Sequence[Number]) -> np.ndarray:
    """Simple returns between consecutive end-of-day values. A day after a non-positive
    value has no meaningful return and is left out."""
    values = np.asarray([float(v) for v in equity], dtype=np.float64)
    if values.size < 2:
        return np.empty(0)
    previous, current = values[:-1], values[1:]
    valid = previous > 0
    return current[valid] / previous[valid] - 1.0


def sharpe_ratio(
    returns: Sequence[float] | np.ndarray,
    *,
    window: int = SHARPE_WINDOW,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> float:
    """Annualised Sharpe of the trailing `window` returns, risk-free 0 (docs/contracts.md section 6)."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)][-window:]
    # Exactly equal returns have no risk to divide by: report 0.0, never inf or NaN. Tested
    # with ptp, not std == 0, because the mean of equal floats can drift by one ulp.
    if r.size < 2 or np.ptp(r) == 0:
        return 0.0
    std = float(np.std(r, ddof=1))
    if not std > 0:
        return 0.0
    return float(np.mean(r)) / std * math.sqrt(periods_per_year)


def drawdowns(equity: Sequence[Number]) -> np.ndarray:
    """`(running peak - value) / running peak` at each point; 0 while no positive peak."""
    values = np.asarray([float(v) for v in equity], dtype=np.float64)
    if values.size == 0:
        return np.empty(0)
    peaks = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, (peaks - values) / peaks, 0.0)
    return dd


def max_drawdown(equity: Sequence[Number]) -> float:
    """Largest peak-to-trough fall as a positive fraction of the peak; 0.0 for no history."""
    dd = drawdowns(equity)
    return float(dd.max()) if dd.size else 0.0


def current_drawdown(equity: Sequence[Number]) -> float:
    """The last of `drawdowns`: the fall of the last value from the peak. Read at every close
    (of a short curve: the peak and the value), so it is not vectorised: the same float
    operations on the same floats, without numpy's cost per call."""
    values = [float(v) for v in equity]
    if not values:
        return 0.0
    if any(math.isnan(v) for v in values):
        return float(drawdowns(values)[-1])  # NaN spreads through numpy's running peak, not max()
    peak, last = max(values), values[-1]
    return (peak - last) / peak if peak > 0 else 0.0


def win_rate(trades: Iterable[ClosedTrade]) -> float:
    pnls = [t.pnl for t in trades]
    return sum(1 for p in pnls if p > 0) / len(pnls) if pnls else 0.0


def profit_factor(trades: Iterable[ClosedTrade]) -> float:
    pnls = [t.pnl for t in trades]
    if not pnls:
        return 0.0
    gross_profit = sum((p for p in pnls if p > 0), ZERO)
    gross_loss = -sum((p for p in pnls if p < 0), ZERO)
    if gross_loss == 0:
        # Only breakeven trades: nothing won either, so report 0.0 rather than a perfect score.
        return math.inf if gross_profit > 0 else 0.0
    return float(gross_profit / gross_loss)


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Trade-level results of one group of trades (standard or micro)."""

    trade_count: int
    win_count: int
    loss_count: int
    win_rate: float
    avg_win: Decimal
    avg_loss: Decimal  # a negative amount, or 0 with no losses
    profit_factor: float
    realized_pnl: Decimal
    unrealized_pnl: Decimal


def trade_stats(trades: Sequence[ClosedTrade], positions: Iterable[OpenPosition] = ()) -> TradeStats:
    """Counts and averages over `trades`; breakeven trades count only in `trade_count`."""
    pnls = [t.pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    return TradeStats(
        trade_count=len(pnls),
        win_count=len(wins),
        loss_count=len(losses),
        win_rate=win_rate(trades),
        avg_win=sum(wins, ZERO) / len(wins) if wins else ZERO,
        avg_loss=sum(losses, ZERO) / len(losses) if losses else ZERO,
        profit_factor=profit_factor(trades),
        realized_pnl=sum(pnls, ZERO),
        unrealized_pnl=sum((p.unrealized_pnl for p in positions), ZERO),
    )


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    metrics: PerformanceMetrics  # account-level fields + standard trades only
    micro: TradeStats


def compute_metrics(
    *,
    portfolio: PortfolioState,
    closed_trades: Sequence[ClosedTrade],
    equity_curve: Sequence[Number],
    start_of_day_value: Decimal,
    computed_at: datetime,
) -> PerformanceReport:
    """Every `PerformanceMetrics` field, plus micro-trade stats kept apart.

    `equity_curve` is end-of-day total value, oldest first, not including today. Sharpe uses
    it alone (daily closes, docs/contracts.md section 6); drawdowns also count the current value, so a
    fall today shows before the day closes.
    """
    standard = [t for t in closed_trades if not t.is_micro_trade]
    micro = [t for t in closed_trades if t.is_micro_trade]
    stats = trade_stats(standard, (p for p in portfolio.positions if not p.is_micro_trade))
    total = portfolio.total_value
    with_today = [*equity_curve, total]
    metrics = PerformanceMetrics(
        total_portfolio_value=total,
        active_pool=portfolio.active_pool,
        reserve_pool=portfolio.reserve_pool,
        unrealized_pnl=stats.unrealized_pnl,
        realized_pnl=stats.realized_pnl,
        daily_pnl=total - start_of_day_value,
        trade_count=stats.trade_count,
        win_count=stats.win_count,
        loss_count=stats.loss_count,
        win_rate=stats.win_rate,
        avg_win=stats.avg_win,
        avg_loss=stats.avg_loss,
        profit_factor=stats.profit_factor,
        sharpe_ratio=sharpe_ratio(daily_returns(equity_curve)),
        max_drawdown=max_drawdown(with_today),
        current_drawdown=current_drawdown(with_today),
        portfolio_heat=portfolio.portfolio_heat,
        computed_at=computed_at,
    )
    micro_stats = trade_stats(micro, (p for p in portfolio.positions if p.is_micro_trade))
    return PerformanceReport(metrics, micro_stats)
