"""What the decision core is told about the market at a backtest instant, with no lookahead:
the backtest's counterpart of the engine's market view store (`market_view_store.py`).

- price: during a session, the session's open (the price book's answer from daily bars), known
  from the session's open on;
- ATR(14): the core's `average_true_range` over the last 60 bars completed before the session;
- correlations: the core's `correlation_from_prices` over the last 90 completed sessions, for
  only the candidate and the tickers held (the sizer asks for nothing else), then the core's
  `CorrelationMatrix.get_portfolio_correlation`;
- earnings proximity, high-severity macro events and intraday ATR (for micro-trades) from the
  data the run was given.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from services.trading.backtest.market import MarketData
from services.trading.core.correlation import (
    LOOKBACK_DAYS,
    MIN_OVERLAP,
    correlations_with_first,
    weighted_correlation,
)
from services.trading.core.decision import MarketFacts, MarketView
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import OpenPosition, Recommendation
from services.trading.core.price_age import DAILY
from services.trading.core.trading_window import NEW_YORK, sessions_until


@dataclass(frozen=True)
class MarketContext:
    market: MarketData
    known_tickers: frozenset[str] = frozenset()  # tickers the `tickers` table knows (besides the market's)
    sectors: Mapping[str, str] = field(default_factory=dict)
    earnings: Mapping[str, Sequence[date]] = field(default_factory=dict)  # sorted dates per ticker
    high_severity_events: Sequence[tuple[datetime, datetime | None]] = ()
    intraday_atr: Mapping[str, Decimal] = field(default_factory=dict)  # per ticker, for micro-trades
    _correlations: WindowCorrelations | None = field(default=None, init=False, repr=False, compare=False)

    def known(self, ticker: str) -> bool:
        return ticker in self.market.index or ticker in self.known_tickers

    def view(self, rec: Recommendation, day: int, now: datetime) -> MarketFacts:
        return self.ticker_view(rec.ticker, day, now)

    def ticker_view(self, ticker: str, day: int, now: datetime) -> MarketFacts:
        if not self.known(ticker):
            return MarketView(ticker_known=False)
        row = self.market.index.get(ticker)
        price = None if row is None else self.market.price(self.market.open, row, day)
        sector = self.market.sectors.get(ticker) or self.sectors.get(ticker, "Unknown")
        # Daily bars only: the price is the session's own open, current for the whole session.
        return _View(
            sector,
            price,
            self.sessions_until_earnings(ticker, now),
            self.high_severity_event(now),
            self.market,
            row,
            day - 1,
            self.intraday_atr.get(ticker),
            None if price is None else self.market.session_open[day],
        )

    def sessions_until_earnings(self, ticker: str, now: datetime) -> int | None:
        dates = self.earnings.get(ticker)
        if not dates:
            return None
        today = now.astimezone(NEW_YORK).date()
        i = bisect.bisect_left(dates, today)
        return None if i == len(dates) else sessions_until(now, dates[i])

    def earnings_soon(self, ticker: str, now: datetime, settings: EngineSettings) -> bool:
        sessions = self.sessions_until_earnings(ticker, now)
        return sessions is not None and sessions <= settings.sizing.earnings_reduce_within_sessions

    def high_severity_event(self, now: datetime) -> bool:
        return any(start <= now and (end is None or now < end) for start, end in self.high_severity_events)

    def correlations(self, day: int) -> WindowCorrelations:
        cached = self._correlations
        if cached is None or cached.day != day:
            cached = WindowCorrelations(self.market, day)
            object.__setattr__(self, "_correlations", cached)  # a cache, not part of the value
        return cached


class _View:
    """A `MarketFacts` whose ATR(14), the costly part, is computed when first read: only a buy
    that passes the cheaper gates reads it (for its stop). A plain slotted class rather than
    a frozen dataclass: one is built per decision, and nothing here assigns after `__init__`
    except the ATR's first reading."""

    __slots__ = (
        "ticker_known",
        "sector",
        "price",
        "sessions_until_earnings",
        "high_severity_event",
        "intraday_atr",
        "price_as_of",
        "price_interval",
        "_market",
        "_row",
        "_atr_through",
        "_atr",
    )

    def __init__(
        self,
        sector: str,
        price: Decimal | None,
        sessions_until_earnings: int | None,
        high_severity_event: bool,
        market: MarketData,
        row: int | None,
        atr_through: int,  # the last session completed before the decision's
        intraday_atr: Decimal | None,  # given with the run: daily bars cannot give it
        price_as_of: datetime | None,
    ) -> None:
        self.ticker_known = True
        self.sector = sector
        self.price = price
        self.sessions_until_earnings = sessions_until_earnings
        self.high_severity_event = high_severity_event
        self.intraday_atr = intraday_atr
        self.price_as_of = price_as_of
        self.price_interval = DAILY
        self._market, self._row, self._atr_through = market, row, atr_through
        self._atr: Decimal | None | _Unread = _UNREAD

    @property
    def daily_atr(self) -> Decimal | None:
        atr = self._atr
        if atr is _UNREAD:
            atr = self._atr = None if self.price is None else self._market.atr(self._row, self._atr_through)
        return atr


class _Unread:
    """The ATR of a `_View` not read yet (None is a reading: too few bars)."""


_UNREAD = _Unread()


def _unknown(ticker: str) -> float:
    return math.nan


class WindowCorrelations:
    """The sizer's `CorrelationSource` for decisions during session `day`: the core's
    correlation of a candidate with the book, over the closes known at that session, worked
    for the candidate and the tickers held only (the sizer asks about nothing else)."""

    def __init__(self, market: MarketData, day: int) -> None:
        self.market, self.day = market, day

    def get_portfolio_correlation(self, candidate: str, positions: Sequence[OpenPosition]) -> float:
        index = self.market.index
        # One position per ticker (the book merges a ticker's orders into its holding).
        others = [p.ticker for p in positions if p.ticker != candidate and p.ticker in index]
        if candidate not in index or not others:
            return weighted_correlation(candidate, positions, _unknown)  # as an empty matrix reads them
        rows = [index[candidate], *(index[t] for t in others)]
        x, m = self.market.centred_correlation_returns(rows, self.day, LOOKBACK_DAYS)
        found = correlations_with_first(x, m, min_overlap=MIN_OVERLAP)
        known = dict(zip(others, found, strict=True))
        return weighted_correlation(candidate, positions, lambda ticker: known.get(ticker, math.nan))
