"""Market data values as the engine reads them from `tickers`, `price_bars` and
`earnings_calendar` (docs/contracts.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

# `price_bars.interval`: bars of a session and of minutes, and `last`, one instant's latest
# price from a live feed (a trade or a quote: no range, so no bar for ATR).
DAILY = "1d"
INTRADAY_BARS = ("1m", "5m")
LAST = "last"


@dataclass(frozen=True, slots=True)
class TickerInfo:
    ticker: str
    name: str
    sector: str
    industry: str


@dataclass(frozen=True, slots=True)
class PriceBar:
    """One OHLCV bar; `ts` is the instant the bar is complete (a daily bar: the session close)."""

    ticker: str
    interval: str
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


@dataclass(frozen=True, slots=True)
class EarningsDate:
    ticker: str
    earnings_date: date
    source: str
    confirmed: bool
