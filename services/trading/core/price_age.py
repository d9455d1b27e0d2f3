"""How current a price is (issue 12): one reading of a quote's age for the rules that must not
act on an old one. A buy needs a current price (`decision`), and a held position whose price
stops coming is closed (`stop_loss_manager.check_price_unavailable`, fed by `Quote.confirmed_at`).

A buy on a two-year-old last bar used to go through, and the missing-price rule sold it
seconds later: the two rules now read a quote's age alike, so a buy is only made on a price
that rule would not call missing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.trading.core.trading_window import previous_session_close

DAILY = "1d"


def confirmed_at(as_of: datetime, interval: str, now: datetime) -> datetime:
    """When the feed last confirmed the price. A daily feed confirms its price once a session:
    its latest bar (the session's open, or the last close before it) is as current as that
    feed gets, so it counts as confirmed now. An intraday price is confirmed when its bar
    completed."""
    if interval == DAILY and as_of >= previous_session_close(now):
        return now
    return as_of


def stale_price_reason(
    ticker: str, as_of: datetime | None, interval: str, now: datetime, max_age: timedelta
) -> str | None:
    """Why the price of `ticker` (from a bar of `interval` known since `as_of`) is too old to
    buy on at `now`, or None when it is current: from the current session (a daily feed), or
    at most `max_age` old."""
    if as_of is None:
        return f"the time of {ticker}'s price is unknown: a buy needs a current price"
    age = now - confirmed_at(as_of, interval, now)
    if age > max_age:
        return (
            f"{ticker}'s latest price is from {as_of.isoformat()} ({interval} bar), {age} old: a buy needs a "
            f"price from the current session, at most {max_age} old"
        )
    return None
