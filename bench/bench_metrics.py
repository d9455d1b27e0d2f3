"""Performance metrics over 10,000 closed trades (issue 4).

Times `compute_metrics` (all PerformanceMetrics fields + separate micro-trade stats) over
10,000 trades (20% micro) and ten years of end-of-day equity, plus the four module-level
functions alone. Run: `python bench/bench_metrics.py [trades] [days]`.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.trading.core.models import ClosedTrade, OpenPosition, PortfolioState
from services.trading.core.performance_tracker import (
    compute_metrics,
    daily_returns,
    max_drawdown,
    profit_factor,
    sharpe_ratio,
    win_rate,
)


def main(n_trades: int = 10_000, n_days: int = 2_520, repeats: int = 5) -> None:
    rng = random.Random(42)
    t0 = datetime(2015, 1, 2, 15, tzinfo=UTC)
    trades = []
    for i in range(n_trades):
        entry = Decimal(rng.randint(1_000, 50_000)) / 100
        exit_ = (entry * Decimal(1 + rng.gauss(0.002, 0.03))).quantize(Decimal("0.01"))
        trades.append(
            ClosedTrade(
                f"T{i % 500:03d}",
                entry,
                exit_,
                Decimal(rng.randint(1, 100)),
                t0,
                t0 + timedelta(hours=3),
                is_micro_trade=rng.random() < 0.2,
            )
        )
    equity, value = [], 100_000.0
    for _ in range(n_days):
        value *= 1 + rng.gauss(0.0004, 0.01)
        equity.append(Decimal(str(round(value, 2))))
    positions = tuple(
        OpenPosition(
            f"P{i}",
            Decimal(10),
            Decimal(100),
            Decimal(101),
            "Tech",
            Decimal(95),
            Decimal(110),
            Decimal("0.7"),
        )
        for i in range(10)
    )
    portfolio = PortfolioState(positions, Decimal(50_000), Decimal(5_000))

    def timed(fn) -> tuple[float, float]:
        out = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
        return statistics.median(out) * 1e3, min(out) * 1e3

    rows = {
        "compute_metrics (all fields)": lambda: compute_metrics(
            portfolio=portfolio,
            closed_trades=trades,
            equity_curve=equity,
            start_of_day_value=equity[-1],
            computed_at=t0,
        ),
        "win_rate": lambda: win_rate(trades),
        "profit_factor": lambda: profit_factor(trades),
        "sharpe_ratio(daily_returns)": lambda: sharpe_ratio(daily_returns(equity)),
        "max_drawdown": lambda: max_drawdown(equity),
    }
    print(f"trades={n_trades} equity_days={n_days} repeats={repeats}")
    for name, fn in rows.items():
        median, best = timed(fn)
        print(f"{name:30s} median {median:8.2f} ms  min {best:8.2f} ms")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
