"""Daily bars as the backtester holds them: one float64 matrix per field, tickers x XNYS sessions,
NaN where a bar is missing or invalid.

Arrays, not bar objects: 500 tickers x 10 years is 1.3 million bars, and a `PriceBar` of four
Decimals costs some 600 bytes where four floats cost 32. Prices are handed to the decision core
as the `Decimal` of their shortest float repr, which is exact for prices of up to 15
significant digits (every price in the sample and in any real feed).

A missing or invalid bar is never filled in: it is NaN, the day is skipped for that ticker
and the hole is reported as a `DataGap` (seed task 19.1: "skip dates, note gaps").
"""

from __future__ import annotations

import functools
import math
from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import numpy as np

from services.trading.core import correlation, stop_loss_manager
from services.trading.core.stop_loss_manager import ATR_LOOKBACK_BARS, ATR_PERIOD
from services.trading.core.trading_window import CALENDAR_START, NEW_YORK, session_times, xnys_calendar
from services.trading.market.market_data import PriceBar

# Sessions of history loaded before the start: the 90-session correlation window, ATR's 60 bars
# and the momentum signal's 30-session average all need it.
WARMUP_SESSIONS = 100


@dataclass(frozen=True, slots=True)
class DataGap:
    """Sessions of the backtest range for which a ticker has no usable bar."""

    ticker: str
    first: date
    last: date
    sessions: int
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "ticker": self.ticker,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "sessions": self.sessions,
            "reason": self.reason,
        }


def xnys_sessions(first: date, last: date) -> list[date]:
    """XNYS session dates in [first, last]."""
    labels = xnys_calendar().sessions_in_range(first.isoformat(), last.isoformat())
    return [label.date() for label in labels]


def warmup_start(start: date, sessions: int = WARMUP_SESSIONS) -> date:
    """The session `sessions` sessions before `start` (or the calendar's first)."""
    calendar = xnys_calendar()
    first = calendar.date_to_session(start.isoformat(), direction="next")
    position = max(calendar.sessions.get_loc(first) - sessions, 0)
    return max(calendar.sessions[position].date(), CALENDAR_START)


def to_decimal(value: float) -> Decimal:
    value = float(value)
    # 0.0 and -0.0 are one key of the cache but two Decimals.
    return _decimal_of(value) if value else Decimal(repr(value))


@functools.lru_cache(maxsize=8192)  # a session asks for the same few prices again and again
def _decimal_of(value: float) -> Decimal:
    return Decimal(repr(value))


MAX_DECIMALS = 8


def decimal_places(values: np.ndarray) -> int | None:
    """The fewest decimal places (up to 8) at which every finite value is exact as a float, or
    None. Prices of a real feed have 2 to 4; they then convert to Decimal through integers."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or np.abs(finite).max() >= 1e6:
        return None
    for places in range(MAX_DECIMALS + 1):
        scale = 10.0**places
        if np.array_equal(np.round(finite * scale) / scale, finite):
            return places
    return None


# What `average_true_range` reads of a bar: high, low, close. A named tuple carries them at half
# the cost of building the frozen `stop_loss_manager.Bar`, and the ATR is read for every buy.
AtrBar = namedtuple("AtrBar", "high low close")


class MarketData:
    """Aligned daily bars of a universe of tickers over a run of XNYS sessions."""

    def __init__(
        self,
        tickers: Sequence[str],
        sessions: Sequence[date],
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        sectors: Mapping[str, str] | None = None,
    ) -> None:
        self.tickers = tuple(tickers)
        self.sessions = tuple(sessions)
        shape = (len(self.tickers), len(self.sessions))
        fields = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close)]
        for array in fields:
            if array.shape != shape:
                raise ValueError(f"bar arrays must be tickers x sessions {shape}, got {array.shape}")
        o, h, l, c = fields
        present = np.isfinite(o) | np.isfinite(h) | np.isfinite(l) | np.isfinite(c)
        with np.errstate(invalid="ignore"):
            valid = (
                np.isfinite(o)
                & np.isfinite(h)
                & np.isfinite(l)
                & np.isfinite(c)
                & (l > 0)
                & (l <= np.minimum(o, c))
                & (h >= np.maximum(o, c))
            )
        self.invalid = present & ~valid
        for array in fields:
            array[~valid] = np.nan
        self.open, self.high, self.low, self.close = o, h, l, c
        self.valid = valid
        self.index = {t: i for i, t in enumerate(self.tickers)}
        self.sectors = {t: (sectors or {}).get(t, "Unknown") for t in self.tickers}
        times = [session_times(d) for d in self.sessions]
        if any(t is None for t in times):
            raise ValueError("every session of the market data must be an XNYS session")
        self.session_open: tuple[datetime, ...] = tuple(t[0] for t in times)  # type: ignore[index]
        self.session_close: tuple[datetime, ...] = tuple(t[1] for t in times)  # type: ignore[index]
        self.data_sessions = np.flatnonzero(valid.any(axis=0))
        self.places = [decimal_places(np.stack([o[r], h[r], l[r], c[r]])) for r in range(len(self.tickers))]
        self._atr_estimates: dict[int, np.ndarray] = {}
        self._true_ranges: dict[int, np.ndarray] = {}
        self._daily_returns: np.ndarray | None = None

    # -- building ------------------------------------------------------------------------

    @classmethod
    def from_bars(
        cls, bars: Iterable[PriceBar], first: date, last: date, sectors: Mapping[str, str] | None = None
    ) -> MarketData:
        """From daily `PriceBar`s (sample data, CSV), each placed on the session of its New York
        date. Bars outside [first, last] are ignored."""
        rows = (
            (b.ticker, b.ts, float(b.open), float(b.high), float(b.low), float(b.close))
            for b in bars
            if b.interval == "1d"
        )
        return cls.from_rows(rows, first, last, sectors)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[str, datetime, float, float, float, float]],
        first: date,
        last: date,
        sectors: Mapping[str, str] | None = None,
        tickers: Sequence[str] = (),
    ) -> MarketData:
        """From (ticker, ts, open, high, low, close) rows, e.g. streamed from `price_bars`.
        `tickers` are included even when they have no row."""
        sessions = xnys_sessions(first, last)
        column = {d: i for i, d in enumerate(sessions)}
        values: dict[str, list[tuple[int, tuple[float, float, float, float]]]] = {t: [] for t in tickers}
        for ticker, ts, *ohlc in rows:
            i = column.get(ts.astimezone(NEW_YORK).date())
            if i is not None:
                values.setdefault(ticker, []).append((i, tuple(ohlc)))  # type: ignore[arg-type]
        names = sorted(values)
        arrays = [np.full((len(names), len(sessions)), np.nan) for _ in range(4)]
        for r, ticker in enumerate(names):
            for i, ohlc in values[ticker]:
                for array, value in zip(arrays, ohlc):
                    array[r, i] = value
        return cls(names, sessions, *arrays, sectors=sectors)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.open, self.high, self.low, self.close, self.valid, self.invalid))

    def session_index(self, day: date, side: str = "left") -> int:
        """Index of the first session on or after `day` (`side="right"`: strictly after)."""
        import bisect

        return (bisect.bisect_left if side == "left" else bisect.bisect_right)(self.sessions, day)

    # -- reading for the decision core -------------------------------------------------

    def price(self, field: np.ndarray, row: int, day: int) -> Decimal | None:
        value = field[row, day]
        return None if math.isnan(value) else to_decimal(value)

    def last_close(self, row: int, day: int) -> Decimal | None:
        """The latest close at or before session `day`."""
        closes = self.close[row, : day + 1]
        found = np.flatnonzero(~np.isnan(closes))
        return to_decimal(closes[found[-1]]) if found.size else None

    def atr(self, row: int, through: int) -> Decimal | None:
        """ATR(14) by the decision core's `average_true_range` over the last 60 bars that exist
        up to and including session `through`; None with fewer than 15.

        Prices quoted to k decimals are handed to the core's whole-number fast path
        (`average_true_range_of_units`) in units of 10^-k dollars and the ATR scaled back:
        Decimal arithmetic rounds to significant digits, so every step of the rule gives the
        same digits in either unit and the result is the same number, without building a Decimal
        per price. A window without a hole takes its true ranges from the ticker's, computed once
        (`_unit_ranges`), and hands them to the core's Wilder smoothing (`average_of_true_ranges`):
        a decision's ATR is a 60-bar window's own, so only the ranges, not the ATR, carry over."""
        if through < 0:
            return None
        lo = through + 1 - ATR_LOOKBACK_BARS
        if lo >= 0 and self.valid[row, lo : through + 1].all():
            window: slice | np.ndarray = slice(lo, through + 1)  # the usual case: no hole in the window
        else:
            window = np.flatnonzero(self.valid[row, : through + 1])[-ATR_LOOKBACK_BARS:]
            if window.size < ATR_PERIOD + 1:
                return None
        places = self.places[row]
        if places is None:
            values = list(
                map(
                    Decimal,
                    map(
                        repr,
                        np.concatenate(
                            (self.high[row, window], self.low[row, window], self.close[row, window])
                        ).tolist(),
                    ),
                )
            )
            n = len(values) // 3
            return stop_loss_manager.average_true_range(
                list(map(AtrBar, values[:n], values[n : 2 * n], values[2 * n :])), ATR_PERIOD
            )
        if isinstance(window, slice):  # consecutive sessions: their true ranges are kept
            ranges = self._unit_ranges(row, places)[lo + 1 : through + 1].tolist()
            return stop_loss_manager.average_of_true_ranges(ranges, ATR_PERIOD).scaleb(-places)
        scale = 10.0**places
        units = [
            np.round(field[row, window] * scale).astype(np.int64)
            for field in (self.high, self.low, self.close)
        ]
        return stop_loss_manager.average_true_range_of_units(*units, ATR_PERIOD).scaleb(-places)

    def _unit_ranges(self, row: int, places: int) -> np.ndarray:
        """The ticker's true range at each session from the one before, in units of 10^-places
        dollars (exact integers), computed on first use: element j is the range of session j
        after session j - 1 (where either has no bar it is never read)."""
        ranges = self._true_ranges.get(row)
        if ranges is None:
            scale = 10.0**places
            valid = self.valid[row]
            h, lo, c = (
                np.where(valid, np.round(field[row] * scale), 0.0).astype(np.int64)
                for field in (self.high, self.low, self.close)
            )
            previous = c[:-1]
            ranges = np.zeros(len(self.sessions), dtype=np.int64)
            ranges[1:] = np.maximum(
                h[1:] - lo[1:], np.maximum(np.abs(h[1:] - previous), np.abs(lo[1:] - previous))
            )
            self._true_ranges[row] = ranges
        return ranges

    def atr_estimates(self, rows: np.ndarray, through: int) -> np.ndarray:
        """Float ATR of several tickers at once (`atr_estimate` of each)."""
        return np.array([self.atr_estimate(row, through) for row in rows.tolist()], dtype=np.float64)

    def atr_estimate(self, row: int, through: int) -> float:
        """A float ATR(14) of the 60 bars through session `through`, to find which stops may need
        re-evaluation.

        Only a trigger: the level is always set by the core's Decimal `average_true_range`. The
        same Wilder ATR over the same 60-bar window, written as one weighted sum of the true
        ranges (the seed mean's weight is a^45/14, a later range's a^k/14, a = 13/14). NaN where
        the window has a hole or is short, which sends that ticker to the core. A ticker's
        estimates for every session are computed together when it is first asked about (one
        convolution of its true ranges with the weights): the stops are maintained every
        session, and a holding is asked about again each one."""
        series = self._atr_estimates.get(row)
        if series is None:
            series = self._atr_estimates[row] = self._atr_estimate_series(row)
        return float(series[through]) if through >= 0 else math.nan

    def _atr_estimate_series(self, row: int) -> np.ndarray:
        n = ATR_LOOKBACK_BARS
        h, l, c = self.high[row], self.low[row], self.close[row]
        previous = c[:-1]
        true_range = np.maximum(h[1:] - l[1:], np.maximum(np.abs(h[1:] - previous), np.abs(l[1:] - previous)))
        series = np.full(len(self.sessions), np.nan)
        if len(self.sessions) >= n:
            # series[d] weighs the true ranges of sessions d - 58 .. d (the window's 59 ranges).
            series[n - 1 :] = np.convolve(true_range, _wilder_weights(n - 1, ATR_PERIOD)[::-1], mode="valid")
        return series

    def correlation_returns(self, rows: Sequence[int], before: int, lookback: int) -> np.ndarray:
        """The daily returns (sessions x tickers) between the closes of `correlation_window(rows,
        before, lookback)`, cut from each ticker's returns over its whole history: the same
        numbers, in the same memory layout (each ticker's contiguous), as
        `correlation.daily_returns` of the window's closes."""
        end = int(np.searchsorted(self.data_sessions, before))
        first = max(0, end - lookback)
        last = max(first, end - 1)
        return np.stack([self._returns_of(row)[first:last] for row in rows]).T

    def centred_correlation_returns(
        self, rows: Sequence[int], before: int, lookback: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """`correlation.centre_returns(self.correlation_returns(rows, before, lookback))`: the
        same numbers in the same layout, worked on one slice of every ticker's returns. Each
        ticker's window is a contiguous row here, and numpy sums a contiguous run the same way
        (pairwise) whichever axis it lies on, so the means are the same bits."""
        end = int(np.searchsorted(self.data_sessions, before))
        first = max(0, end - lookback)
        returns = self._all_returns()[rows, first : max(first, end - 1)]
        mask = np.isfinite(returns)
        if returns.shape[1] and mask.all():
            # No gap in the window (the usual case): the general path's selections would keep
            # every value, and the row's length is each count, so these are its numbers.
            return (returns - (returns.sum(axis=1) / returns.shape[1])[:, None]).T, np.ones(returns.shape).T
        counts = mask.sum(axis=1)
        sums = np.where(mask, returns, 0.0).sum(axis=1)
        means = np.divide(sums, counts, out=np.zeros(len(rows)), where=counts > 0)
        return np.where(mask, returns - means[:, None], 0.0).T, mask.astype(np.float64).T

    def _returns_of(self, row: int) -> np.ndarray:
        return self._all_returns()[row]

    def _all_returns(self) -> np.ndarray:
        """Each ticker's return (a row) from each session with any data to the next, computed
        for every ticker at once when first asked (each return is its own two closes' quotient,
        the same bits however many are worked together)."""
        if self._daily_returns is None:
            closes = self.close[:, self.data_sessions]
            self._daily_returns = np.ascontiguousarray(correlation.daily_returns(closes.T).T)
        return self._daily_returns

    def correlation_window(self, rows: Sequence[int], before: int, lookback: int) -> np.ndarray:
        """Closes (sessions x tickers) of the last `lookback` sessions with any data before
        session `before`: the closes known at a decision made during that session."""
        end = np.searchsorted(self.data_sessions, before)
        columns = self.data_sessions[max(0, end - lookback) : end]
        # Only the window's cells are copied, not each ticker's whole history first.
        return self.close[np.ix_(np.asarray(rows), columns)].T

    # -- gaps ------------------------------------------------------------------------------

    def gaps(self, rows: Iterable[int], first: int, last: int) -> list[DataGap]:
        """Holes in sessions [first, last] of each ticker: no bars at all, before its first bar,
        after its last, missing in between, or an invalid bar (prices that do not hold together)."""
        gaps: list[DataGap] = []
        for row in rows:
            ticker = self.tickers[row]
            span = self.valid[row, first : last + 1]
            if not span.any():
                gaps.append(
                    DataGap(
                        ticker,
                        self.sessions[first],
                        self.sessions[last],
                        last - first + 1,
                        "no usable daily bars in the range",
                    )
                )
                continue
            present = np.flatnonzero(span)
            head, tail = present[0], present[-1]
            if head > 0:
                gaps.append(
                    DataGap(
                        ticker,
                        self.sessions[first],
                        self.sessions[first + head - 1],
                        int(head),
                        f"no bars before its first bar on {self.sessions[first + head]}",
                    )
                )
            if tail < span.size - 1:
                gaps.append(
                    DataGap(
                        ticker,
                        self.sessions[first + tail + 1],
                        self.sessions[last],
                        int(span.size - 1 - tail),
                        f"no bars after its last bar on {self.sessions[first + tail]}",
                    )
                )
            gaps += self._holes(row, first + head, first + tail)
        return gaps

    def _holes(self, row: int, first: int, last: int) -> list[DataGap]:
        ticker = self.tickers[row]
        gaps = []
        for kind, mask, reason in (
            (
                "invalid",
                self.invalid[row, first : last + 1],
                ("invalid bar: prices are not positive or low/high do not bracket open/close"),
            ),
            (
                "missing",
                ~self.valid[row, first : last + 1] & ~self.invalid[row, first : last + 1],
                "missing bar",
            ),
        ):
            if not mask.any():
                continue
            edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
            for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                gaps.append(
                    DataGap(
                        ticker,
                        self.sessions[first + start],
                        self.sessions[first + stop - 1],
                        int(stop - start),
                        reason if kind == "invalid" or stop - start == 1 else reason + "s",
                    )
                )
        return sorted(gaps, key=lambda g: g.first)


_WEIGHTS: dict[tuple[int, int], np.ndarray] = {}


def _wilder_weights(ranges: int, period: int) -> np.ndarray:
    key = (ranges, period)
    if key not in _WEIGHTS:
        a = (period - 1) / period
        steps = ranges - period
        weights = np.empty(ranges)
        weights[:period] = a**steps / period
        weights[period:] = a ** np.arange(steps - 1, -1, -1) / period
        _WEIGHTS[key] = weights
    return _WEIGHTS[key]
