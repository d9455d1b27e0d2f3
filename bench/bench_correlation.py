"""Correlation refresh for 500 tickers x 90 sessions (issue 4).

Times `compute_correlation_matrix` (dict-of-closes in, matrix out: what the engine's daily
refresh does after its query) and the bare numpy kernel, with ~2% of closes missing so the
masked path is exercised. Run: `python bench/bench_correlation.py [tickers] [sessions]`.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.trading.core.correlation import compute_correlation_matrix, correlation_from_prices


def main(n_tickers: int = 500, n_sessions: int = 90, repeats: int = 7) -> None:
    rng = np.random.default_rng(42)
    market = rng.normal(0, 0.01, n_sessions)
    betas = rng.uniform(0.2, 1.5, n_tickers)
    returns = market[:, None] * betas + rng.normal(0, 0.015, (n_sessions, n_tickers))
    prices = 100 * np.cumprod(1 + returns, axis=0)
    prices[rng.random(prices.shape) < 0.02] = np.nan
    sessions = [date(2025, 1, 1) + timedelta(days=i) for i in range(n_sessions)]
    closes = {
        f"T{j:03d}": {d: float(p) for d, p in zip(sessions, prices[:, j]) if np.isfinite(p)}
        for j in range(n_tickers)
    }

    def timed(fn) -> list[float]:
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    kernel = timed(lambda: correlation_from_prices(prices))
    full = timed(lambda: compute_correlation_matrix(closes, as_of=sessions[-1]))
    matrix = compute_correlation_matrix(closes, as_of=sessions[-1])
    known = sum(1 for _ in matrix.pairs())
    print(f"tickers={n_tickers} sessions={n_sessions} pairs_known={known} repeats={repeats}")
    print(
        f"kernel (numpy, masked)      median {statistics.median(kernel) * 1e3:8.1f} ms  min {min(kernel) * 1e3:8.1f} ms"
    )
    print(
        f"compute_correlation_matrix  median {statistics.median(full) * 1e3:8.1f} ms  min {min(full) * 1e3:8.1f} ms"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
