"""The upstream writer a soak plays: rows inserted into `recommendations` at a steady rate,
as the research service does, good ones for the tickers with prices and, when asked, the
malformed ones issue 12 found (each kind in turn, so a short run meets every kind).
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.trading.soak.market import BARE_TICKER, LONG_TICKER, STALE_TICKER, UNKNOWN_TICKER

GOOD = "good"
BUY_SHARE = 0.6
HUGE_TICKER_LENGTH = 3 * 1024
# In this order: the rows a defect could block the loop on come last, so that a short run
# still sees the others decided (and a stale price bought) before any block.
MALFORMED_KINDS = (
    "stale_price",
    "no_price_ticker",
    "unknown_ticker",
    "nan_confidence",
    "confidence_out_of_range",
    "unknown_action",
    "long_ticker",
    "huge_ticker",
)


@dataclass(frozen=True, slots=True)
class UpstreamRow:
    ticker: str
    action: str
    confidence: float
    kind: str = GOOD


class Upstream:
    """The sequence of rows a seeded soak writes: the same seed writes the same rows."""

    def __init__(self, rng: random.Random, tickers: tuple[str, ...], malformed_share: float = 0.0) -> None:
        self.rng = rng
        self.tickers = tickers
        self.malformed_share = malformed_share
        self._next_malformed = 0
        # Random letters: PostgreSQL cannot compress them under the index's size limit.
        self.huge_ticker = "".join(rng.choice(string.ascii_uppercase) for _ in range(HUGE_TICKER_LENGTH))

    def next_row(self) -> UpstreamRow:
        if self.malformed_share and self.rng.random() < self.malformed_share:
            kind = MALFORMED_KINDS[self._next_malformed % len(MALFORMED_KINDS)]
            self._next_malformed += 1
            return self.malformed(kind)
        action = "buy" if self.rng.random() < BUY_SHARE else "sell"
        return UpstreamRow(self.rng.choice(self.tickers), action, round(self.rng.uniform(0.55, 0.95), 3))

    def malformed(self, kind: str) -> UpstreamRow:
        ticker = self.rng.choice(self.tickers)
        rows = {
            "nan_confidence": UpstreamRow(ticker, "buy", math.nan, kind),
            "unknown_action": UpstreamRow(ticker, "short", 0.9, kind),
            "long_ticker": UpstreamRow(LONG_TICKER, "buy", 0.9, kind),
            "huge_ticker": UpstreamRow(self.huge_ticker, "buy", 0.9, kind),
            "no_price_ticker": UpstreamRow(BARE_TICKER, "buy", 0.9, kind),
            "unknown_ticker": UpstreamRow(UNKNOWN_TICKER, "buy", 0.9, kind),
            "stale_price": UpstreamRow(STALE_TICKER, "buy", 0.9, kind),
            "confidence_out_of_range": UpstreamRow(ticker, "buy", 1.5, kind),
        }
        return rows[kind]


async def write(pool: asyncpg.Pool, row: UpstreamRow, generated_at: datetime) -> int:
    return await pool.fetchval(
        """INSERT INTO recommendations (ticker, action, confidence, mode, trend_window, thesis, generated_at)
           VALUES ($1, $2, $3, 'paper_eligible', '20d', $4, $5) RETURNING id""",
        row.ticker,
        row.action,
        row.confidence,
        f"soak: {row.kind}",
        generated_at,
    )
