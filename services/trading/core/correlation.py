"""Trailing correlations of daily returns between tickers (seed task 11.1, docs/contracts.md section 6).

Rule: over the last `lookback_days` (default 90) closes on or before `as_of`, a ticker's daily
return on a session is `close / previous session's close - 1`, defined only when it has a
close on both sessions (a missing day makes two returns unknown; we never stretch a return
over a gap, because its partner's return would then cover a different span). A pair's Pearson
correlation uses only the sessions where both returns are defined; with fewer than
`min_overlap` (default 20) such sessions, or a flat series on them, the pair is *unknown*,
and unknown reads as 0.0 — neither a reason to cut a position nor a reason to reject one.

The refresh schedule and the `correlation_matrix_cache` table belong to the engine; this
module only turns close prices into a `CorrelationMatrix` value, and back into pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType

import numpy as np

from services.trading.core.models import ZERO, OpenPosition

LOOKBACK_DAYS = 90
MIN_OVERLAP = 20

Number = float | int | Decimal


@dataclass(frozen=True, eq=False)
class CorrelationMatrix:
    """Pairwise return correlations, read-only. Unknown pairs are stored as NaN and read
    as 0.0; a ticker with itself is 1.0 even when its own history is unknown."""

    tickers: tuple[str, ...]
    values: np.ndarray = field(repr=False)
    computed_at: datetime | None = None
    lookback_days: int = LOOKBACK_DAYS
    _index: Mapping[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.tickers)
        if self.values.shape != (n, n):
            raise ValueError(f"values must be {n}x{n} for {n} tickers, got {self.values.shape}")
        frozen = np.array(self.values, dtype=np.float64, copy=True)
        frozen.setflags(write=False)
        object.__setattr__(self, "values", frozen)
        object.__setattr__(self, "_index", MappingProxyType({t: i for i, t in enumerate(self.tickers)}))

    @classmethod
    def empty(cls) -> CorrelationMatrix:
        """No data at all: every pair of distinct tickers reads 0.0."""
        return cls((), np.empty((0, 0)))

    @classmethod
    def from_pairs(
        cls,
        pairs: Mapping[tuple[str, str], float],
        *,
        computed_at: datetime | None = None,
        lookback_days: int = LOOKBACK_DAYS,
    ) -> CorrelationMatrix:
        """Rebuild from stored pairs (e.g. the cache table); a missing pair stays unknown."""
        tickers = tuple(sorted({t for pair in pairs for t in pair}))
        index = {t: i for i, t in enumerate(tickers)}
        values = np.full((len(tickers), len(tickers)), np.nan)
        np.fill_diagonal(values, 1.0)
        for (a, b), c in pairs.items():
            values[index[a], index[b]] = values[index[b], index[a]] = 1.0 if a == b else float(c)
        return cls(tickers, values, computed_at, lookback_days)

    def is_known(self, a: str, b: str) -> bool:
        if a == b:
            return True
        i, j = self._index.get(a), self._index.get(b)
        return i is not None and j is not None and bool(np.isfinite(self.values[i, j]))

    def get_correlation(self, a: str, b: str) -> float:
        """Correlation of the two tickers' daily returns; 1.0 for a ticker with itself,
        0.0 when unknown (not enough shared history, or a ticker never seen)."""
        if a == b:
            return 1.0
        i, j = self._index.get(a), self._index.get(b)
        if i is None or j is None:
            return 0.0
        value = float(self.values[i, j])
        return value if np.isfinite(value) else 0.0

    def get_portfolio_correlation(self, candidate: str, positions: Sequence[OpenPosition]) -> float:
        """Market-value-weighted mean correlation of `candidate` with the open positions
        (docs/contracts.md section 6, the `c` of the sizing rule); 0.0 with nothing to compare against.

        Positions in the candidate itself are left out: adding to a holding is concentration,
        which the position and sector caps govern, not correlation (counting it as 1.0 would
        reject every add-on outright). Unknown pairs count as 0.0 at their full weight.
        """
        i = self._index.get(candidate)
        row = self.values[i].tolist() if i is not None else None  # the candidate's pairs, read once
        index = self._index

        def with_candidate(ticker: str) -> float:
            j = index.get(ticker)
            return row[j] if row is not None and j is not None else math.nan

        return weighted_correlation(candidate, positions, with_candidate)

    def pairs(self) -> Iterator[tuple[str, str, float]]:
        """Every known pair once (a < b), for the engine to store in its cache table."""
        n = len(self.tickers)
        rows, cols = np.triu_indices(n, k=1)
        for i, j in zip(rows.tolist(), cols.tolist()):
            value = float(self.values[i, j])
            if np.isfinite(value):
                yield self.tickers[i], self.tickers[j], value


def weighted_correlation(
    candidate: str, positions: Sequence[OpenPosition], with_candidate: Callable[[str], float]
) -> float:
    """The rule of `CorrelationMatrix.get_portfolio_correlation`, for any source of the
    candidate's correlation with one ticker (NaN when unknown, read as 0.0 at full weight)."""
    weighted = 0.0
    total_weight = 0.0
    for position in positions:
        if position.ticker == candidate:
            continue
        weight = float(max(position.market_value, ZERO))
        correlation = with_candidate(position.ticker)
        weighted += weight * (correlation if math.isfinite(correlation) else 0.0)
        total_weight += weight
    return weighted / total_weight if total_weight > 0 else 0.0


def compute_correlation_matrix(
    closes: Mapping[str, Mapping[date, Number]],
    *,
    as_of: date,
    lookback_days: int = LOOKBACK_DAYS,
    min_overlap: int = MIN_OVERLAP,
    computed_at: datetime | None = None,
) -> CorrelationMatrix:
    """Close prices per ticker per session date -> correlations of their daily returns.

    The window is the last `lookback_days` distinct session dates (across all tickers) on or
    before `as_of`. Non-positive or non-finite closes count as missing.
    """
    if lookback_days < 2:
        raise ValueError("lookback_days must be at least 2 to form one return")
    tickers = tuple(sorted(closes))
    sessions = sorted({d for series in closes.values() for d in series if d <= as_of})[-lookback_days:]
    row = {d: i for i, d in enumerate(sessions)}
    prices = np.full((len(sessions), len(tickers)), np.nan)
    for col, ticker in enumerate(tickers):
        for day, close in closes[ticker].items():
            if day in row:
                prices[row[day], col] = float(close)
    values = correlation_from_prices(prices, min_overlap=min_overlap)
    return CorrelationMatrix(tickers, values, computed_at, lookback_days)


def correlation_from_prices(prices: np.ndarray, *, min_overlap: int = MIN_OVERLAP) -> np.ndarray:
    """Sessions x tickers closes (NaN = missing) -> tickers x tickers Pearson correlations of
    daily returns over each pair's common returns; NaN where unknown, 1.0 on the diagonal.

    Vectorised with masks: every pairwise sum over the common days is one matrix product of
    the zero-filled returns with the 0/1 "return defined" mask, so 500 tickers cost a few
    500x500 products, not 125,000 Python-level pair loops.
    """
    x, m = centred_returns(prices)
    n = m.T @ m  # common returns per pair
    sum_a = x.T @ m  # [a, b]: sum of a's returns over the days b is also defined
    sum_sq_a = (x * x).T @ m
    sum_ab = x.T @ x
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sum_ab - sum_a * sum_a.T / n
        var_a = sum_sq_a - sum_a * sum_a / n
        var_b = var_a.T
        corr = cov / np.sqrt(var_a * var_b)
    # A flat series (variance lost in rounding) or too short an overlap is unknown.
    scale = np.maximum(sum_sq_a, sum_sq_a.T)
    flat = (var_a <= 1e-12 * scale) | (var_b <= 1e-12 * scale) | (var_a <= 0) | (var_b <= 0)
    corr = np.where((n >= max(min_overlap, 2)) & ~flat, np.clip(corr, -1.0, 1.0), np.nan)
    np.fill_diagonal(corr, 1.0)
    return corr


def centred_returns(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sessions x tickers closes -> each ticker's daily returns centred on its own mean, 0.0
    where undefined, and the 0/1 "return defined" mask. A ticker's column depends on its own
    closes only, so columns computed apart may be put side by side.

    Centring each column on its own mean first leaves every correlation unchanged, and the
    one-pass sums over common days then lose no precision to cancellation."""
    return centre_returns(daily_returns(prices))


def daily_returns(prices: np.ndarray) -> np.ndarray:
    """Sessions x tickers closes -> the daily returns between consecutive rows, NaN where
    either close is missing or not positive. Element by element: the returns of a longer run
    of closes, cut to a window, are the window's own returns to the last bit (the backtest
    computes them once for its whole history)."""
    prices = np.where(np.isfinite(prices) & (prices > 0), prices, np.nan)
    return prices[1:] / prices[:-1] - 1.0


def centre_returns(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sessions x tickers `daily_returns` -> `centred_returns`' pair (centred returns, mask).

    The means are column sums, and numpy adds a column in an order that depends on its layout
    in memory: given the same layout (each ticker's returns contiguous, as `daily_returns` of
    a tickers x sessions array's transpose gives), the same returns give the same sums to the
    last bit wherever they are cut from."""
    mask = np.isfinite(returns)
    counts = mask.sum(axis=0)
    means = np.divide(
        np.where(mask, returns, 0.0).sum(axis=0), counts, out=np.zeros(counts.shape), where=counts > 0
    )
    return np.where(mask, returns - means, 0.0), mask.astype(np.float64)


def correlations_with_first(x: np.ndarray, m: np.ndarray, *, min_overlap: int = MIN_OVERLAP) -> list[float]:
    """`centred_returns` of several tickers -> the correlation of the first with each of the
    others (NaN where unknown): row 0 of `correlation_from_prices` by the same sums, for one
    candidate against a book without building the whole matrix (the backtest asks this at each
    decision and each later tranche).

    The sums are numpy's; the few figures per pair that follow are worked in plain floats (a
    book holds a handful of positions, and numpy's cost per call was most of the time): the
    same IEEE operations in the same order, so the same number to the last bit."""
    a, mask_a, b, mask_b = x[:, 0], m[:, 0], x[:, 1:], m[:, 1:]
    columns = zip(
        (mask_a @ mask_b).tolist(),
        (a @ mask_b).tolist(),
        (mask_a @ b).tolist(),
        ((a * a) @ mask_b).tolist(),
        (mask_a @ (b * b)).tolist(),
        (a @ b).tolist(),
        strict=True,
    )
    least = max(min_overlap, 2)
    found = []
    for n, sum_a, sum_b, sum_sq_a, sum_sq_b, sum_ab in columns:
        if not n >= least:
            found.append(math.nan)
            continue
        cov = sum_ab - sum_a * sum_b / n
        var_a = sum_sq_a - sum_a * sum_a / n
        var_b = sum_sq_b - sum_b * sum_b / n
        scale = max(sum_sq_a, sum_sq_b)
        # A flat series (variance lost in rounding) is unknown.
        if var_a <= 1e-12 * scale or var_b <= 1e-12 * scale or var_a <= 0 or var_b <= 0:
            found.append(math.nan)
            continue
        root = math.sqrt(var_a * var_b)
        if root:
            corr = cov / root
        else:  # the product underflowed: IEEE division by zero, as numpy divides
            corr = math.copysign(math.inf, cov) if cov else math.nan
        found.append(min(max(corr, -1.0), 1.0))
    return found
