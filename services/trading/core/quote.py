"""A quote: the latest known price of a ticker, with when it was known and from which bars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.trading.core import price_age


@dataclass(frozen=True, slots=True)
class Quote:
    ticker: str
    price: Decimal
    as_of: datetime
    interval: str = "1d"

    def confirmed_at(self, now: datetime) -> datetime:
        """When the feed last confirmed this price, for the missing-price rule (price_age.py)."""
        return price_age.confirmed_at(self.as_of, self.interval, now)


def price_text(price: Decimal) -> str:
    """A price as a person reads it, whatever scale it was stored with: at least two decimals,
    no trailing zeros beyond them ($323.9500 and $323.95 are the same price)."""
    text = f"{price.normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
