"""A ticker's latest price from a feed's last trade and top of book (issue 14, live prices).

The last trade is the price when it is the newest news. On a thin feed (IEX carries a few
per cent of US volume) a stock can go many minutes without a trade while its quotes move on,
and the engine closes a position whose price stops coming for 15 minutes; so a newer quote
keeps the price current: one that still brackets the last trade confirms that price at the
quote's time, one that moved away from it gives its midpoint. A quote missing a side (a bid
of 0) or crossed (bid above ask) is no price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.trading.core.trading_window import require_aware


@dataclass(frozen=True, slots=True)
class LastTrade:
    price: Decimal
    size: int
    at: datetime


@dataclass(frozen=True, slots=True)
class TopOfBook:
    bid: Decimal
    ask: Decimal
    at: datetime

    @property
    def two_sided(self) -> bool:
        return Decimal(0) < self.bid <= self.ask


@dataclass(frozen=True, slots=True)
class LastPrice:
    """The price and when the feed last confirmed it; `volume` is the trade's size when a
    trade set it, 0 when a quote confirmed or set it."""

    price: Decimal
    at: datetime
    volume: int


def last_price(trade: LastTrade | None, quote: TopOfBook | None) -> LastPrice | None:
    book = quote if quote is not None and quote.two_sided else None
    if trade is not None:
        require_aware(trade.at, "trade time")
    if book is None or (trade is not None and trade.at >= require_aware(book.at, "quote time")):
        return None if trade is None else LastPrice(trade.price, trade.at, trade.size)
    if trade is not None and book.bid <= trade.price <= book.ask:
        return LastPrice(trade.price, book.at, 0)
    return LastPrice((book.bid + book.ask) / 2, book.at, 0)
