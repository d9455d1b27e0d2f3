"""Market data values as the engine reads them from `tickers`, `price_bars` and
`earnings_calendar` (docs/contracts.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


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
