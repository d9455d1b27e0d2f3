"""The equity curve of a backtest as a PNG: value over time, with the drawdown beneath.

matplotlib is imported here only, on first use, with no pyplot state (a bare `Figure` on the
Agg canvas), so the rest of the backtester never needs it.
"""

from __future__ import annotations

from pathlib import Path

from services.trading.backtest.results import BacktestResult
from services.trading.core import performance_tracker


def write_equity_png(result: BacktestResult, path: Path) -> Path:
    """Draw `result`'s equity curve and drawdown into `path` (directories created)."""
    from matplotlib.figure import Figure

    dates = [day for day, _ in result.equity_curve]
    values = [float(value) for _, value in result.equity_curve]
    drawdown = performance_tracker.drawdowns([float(result.config.initial_capital), *values])[1:] * -100
    figure = Figure(figsize=(10, 6), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    c = result.config
    top.plot(dates, values, color="#1f6feb", linewidth=1.2)
    top.axhline(float(c.initial_capital), color="#8b949e", linewidth=0.8, linestyle="--")
    top.set_title(
        f"Backtest {c.start_date} .. {c.end_date}, {c.risk_tier.value} tier, {c.signals.value} signals: "
        f"{result.metrics.total_return:+.2%}, max drawdown {result.metrics.max_drawdown:.2%}"
        + ("" if result.completed else " (FAILED, partial)"),
        fontsize=10,
    )
    top.set_ylabel("portfolio value ($)")
    top.grid(alpha=0.3)
    bottom.fill_between(dates, drawdown, 0, color="#d1242f", alpha=0.5, linewidth=0)
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
