"""Micro-benchmark: evaluations per second of the full position-sizing path (issue #3).

Each evaluation runs `PositionSizer.compute` end to end (Active Pool gate, confidence gate,
earnings, market-value-weighted correlation against 10 open positions looked up in a
500-ticker matrix, diversification, clamp, cap, sector cap, share rounding, heat check).
The matrix is a numpy array behind a dict of ticker -> row index, standing in for
services/trading/core/correlation.py. Run:

    python bench/bench_sizing.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from services.shared.schemas import RiskTierName
from services.trading.core.models import RISK_TIER_DEFAULTS, OpenPosition, PortfolioState
from services.trading.core.position_sizer import PositionSizer, SizingRequest

TICKERS = [f"T{i:03d}" for i in range(500)]
SECTORS = ["Tech", "Health", "Energy", "Finance", "Utilities", "Industrials"]


class NumpyCorrelations:
    """A symmetric 500 x 500 correlation matrix with the CorrelationSource method."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        factors = rng.normal(size=(len(TICKERS), 4))
        returns = factors @ rng.normal(size=(4, 250)) + rng.normal(size=(len(TICKERS), 250)) * 2
        self.matrix = np.corrcoef(returns)
        self.index = {t: i for i, t in enumerate(TICKERS)}

    def get_portfolio_correlation(self, candidate: str, positions: Sequence[OpenPosition]) -> float:
        row = self.index.get(candidate)
        if row is None or not positions:
            return 0.0
        weights = total = 0.0
        for p in positions:
            column = self.index.get(p.ticker)
            value = float(p.market_value)
            total += value
            if column is not None:
                weights += value * float(self.matrix[row, column])
        return weights / total if total > 0 else 0.0


def build_portfolio() -> PortfolioState:
    positions = tuple(
        OpenPosition(
            ticker=TICKERS[i * 7],
            quantity=Decimal(10 + i),
            entry_price=Decimal("50") + i,
            current_price=Decimal("52") + i,
            sector=SECTORS[i % len(SECTORS)],
            stop_loss_price=Decimal("48") + i,
            take_profit_price=Decimal("60") + i,
            signal_confidence=Decimal("0.70"),
        )
        for i in range(10)
    )
    return PortfolioState(positions=positions, cash=Decimal("50000"), reserve_pool=Decimal("2000"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    sizer = PositionSizer(NumpyCorrelations())
    portfolio = build_portfolio()
    tier = RISK_TIER_DEFAULTS[RiskTierName.MODERATE]
    rng = random.Random(11)
    requests = [
        SizingRequest(
            ticker=rng.choice(TICKERS),
            sector=rng.choice(SECTORS),
            confidence=Decimal(rng.randint(60, 99)) / 100,
            current_price=Decimal(rng.randint(500, 50000)) / 100,
            stop_distance=Decimal(rng.randint(50, 500)) / 100,
            sessions_until_earnings=rng.choice([None, None, 2, 10]),
        )
        for _ in range(1000)
    ]
    for r in requests[:200]:  # warm-up
        sizer.compute(r, portfolio, tier)
    count, rejected = 0, 0
    started = time.perf_counter()
    deadline = started + args.seconds
    while time.perf_counter() < deadline:
        for r in requests:
            rejected += sizer.compute(r, portfolio, tier).rejected
        count += len(requests)
    elapsed = time.perf_counter() - started
    print(
        f"full sizing path, 10 open positions, 500-ticker matrix: {count / elapsed:,.0f} evaluations/s "
        f"({elapsed / count * 1e6:.1f} us each; {count} evaluations, {rejected / count:.0%} rejected)"
    )


if __name__ == "__main__":
    main()
