"""A simple, documented momentum signal that writes recommendations from daily bars.

It stands in for the upstream signal pipeline so the engine has something to trade:

- **buy** when the 10-session simple moving average of the close crosses above the 30-session
  one (a "golden cross"); **sell** when it crosses back below.
- **confidence** grows with the 20-session rate of change in the signal's direction:
  `0.5 + 0.45 * min(|roc20| / 0.08, 1)`, so a flat market gives 0.5 (below every risk tier's
  threshold), a 3% move about 0.67 and an 8% move or more 0.95.
- Each recommendation is stamped at the close of the session whose bar produced it, with mode
  `paper_eligible` and trend window `20d`.

The two windows are parameters (`fast`, `slow`) so a parameter search can tune them
(issue 16); everything else, and the defaults, stay as above.

Pure: bars in, recommendation drafts out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from services.trading.market.market_data import PriceBar

FAST_WINDOW = 10
SLOW_WINDOW = 30
ROC_WINDOW = 20
FULL_CONFIDENCE_MOVE = 0.08


@dataclass(frozen=True, slots=True)
class RecommendationDraft:
    ticker: str
    action: str
    confidence: float
    mode: str
    trend_window: str
    thesis: str
    generated_at: datetime


def _sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average; NaN until `window` values exist."""
    out = np.full(values.shape, np.nan)
    sums = np.cumsum(values)
    out[window - 1 :] = (sums[window - 1 :] - np.concatenate(([0.0], sums[:-window]))) / window
    return out


def confidence_for(rate_of_change: float) -> float:
    return 0.5 + 0.45 * min(abs(rate_of_change) / FULL_CONFIDENCE_MOVE, 1.0)


def crossover_signals(
    bars: Sequence[PriceBar], fast: int = FAST_WINDOW, slow: int = SLOW_WINDOW
) -> list[RecommendationDraft]:
    """Recommendations for one ticker's daily bars, oldest first."""
    if len(bars) <= slow:
        return []
    closes = np.fromiter((float(b.close) for b in bars), dtype=np.float64, count=len(bars))
    fast_sma, slow_sma, crossings = _crossings(closes, fast, slow)
    values = closes.tolist()
    return [
        _draft(bars[i].ticker, bars[i].ts, values, fast_sma, slow_sma, i, (fast, slow)) for i in crossings
    ]


def crossover_signals_of_closes(
    ticker: str,
    closes: np.ndarray,
    stamps: Sequence[datetime],
    fast: int = FAST_WINDOW,
    slow: int = SLOW_WINDOW,
) -> list[RecommendationDraft]:
    """`crossover_signals` of one ticker's closes (float64, oldest first) stamped `stamps[i]`:
    the same rule on arrays, for callers (the backtester) that hold bars as arrays."""
    if len(closes) <= slow:
        return []
    closes = np.asarray(closes, dtype=np.float64)
    fast_sma, slow_sma, crossings = _crossings(closes, fast, slow)
    values = closes.tolist()
    return [_draft(ticker, stamps[i], values, fast_sma, slow_sma, i, (fast, slow)) for i in crossings]


def _crossings(
    closes: np.ndarray, fast_window: int, slow_window: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The SMAs and the indices i >= slow_window where the fast SMA crossed the slow one
    between bars i - 1 and i (the slow SMA known at i - 1)."""
    if not 1 <= fast_window < slow_window:
        raise ValueError(
            f"the fast window ({fast_window}) must be at least 1 and shorter than the slow one ({slow_window})"
        )
    fast, slow = _sma(closes, fast_window), _sma(closes, slow_window)
    above = fast > slow
    changed = (above[slow_window:] != above[slow_window - 1 : -1]) & ~np.isnan(slow[slow_window - 1 : -1])
    return fast, slow, (np.flatnonzero(changed) + slow_window).tolist()


def _draft(
    ticker: str,
    ts: datetime,
    closes: list[float],
    fast: np.ndarray,
    slow: np.ndarray,
    i: int,
    windows: tuple[int, int] = (FAST_WINDOW, SLOW_WINDOW),
) -> RecommendationDraft:
    up = bool(fast[i] > slow[i])
    action = "buy" if up else "sell"
    roc = closes[i] / closes[i - ROC_WINDOW] - 1.0
    directional = roc if up else -roc
    confidence = confidence_for(directional) if directional > 0 else 0.5
    return RecommendationDraft(
        ticker=ticker,
        action=action,
        confidence=round(float(confidence), 4),
        mode="paper_eligible",
        trend_window="20d",
        generated_at=ts,
        thesis=(
            f"momentum: SMA{windows[0]} {float(fast[i]):.2f} crossed {'above' if up else 'below'} "
            f"SMA{windows[1]} {float(slow[i]):.2f}; {ROC_WINDOW}-session change {roc:+.1%}"
        ),
    )
