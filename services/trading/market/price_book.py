"""The latest known price of a ticker at an instant, read from `price_bars` without lookahead.

A bar is known from its `ts` (the instant it completed) on, with one exception: a daily bar's
open is known from its session's open, so during a session the latest price from daily data
is that session's open, and after the close it is the close. Intraday bars (`5m`, `1m`) and a
live feed's latest prices (`last`), where present and newer, win. The engine, the paper broker and the demo replay all price through
this one module, so they can never disagree about "the market price".
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from services.trading.core.quote import Quote
from services.trading.core.trading_window import NEW_YORK, session_times

_LATEST_COMPLETED = """
SELECT DISTINCT ON (ticker) ticker, close, ts, interval FROM price_bars
WHERE ticker = ANY($1::text[]) AND ts <= $2 ORDER BY ticker, ts DESC
"""
# The first daily bar completing after `at`: the session in progress, if one is.
_NEXT_DAILY = """
SELECT DISTINCT ON (ticker) ticker, open, ts FROM price_bars
WHERE ticker = ANY($1::text[]) AND interval = '1d' AND ts > $2 ORDER BY ticker, ts
"""


def _open_of_session_in_progress(bar_close: datetime, at: datetime) -> datetime | None:
    times = session_times(bar_close.astimezone(NEW_YORK).date())
    if times is None or not (times[0] <= at < times[1]):
        return None
    return times[0]


class PriceBook:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def quotes(self, tickers: Iterable[str], at: datetime) -> dict[str, Quote]:
        """The freshest known quote of each ticker at `at`; tickers with none are absent."""
        symbols = sorted(set(tickers))
        if not symbols:
            return {}
        # Two independent reads, overlapped on two pooled connections (decision latency).
        completed, upcoming = await asyncio.gather(
            self.pool.fetch(_LATEST_COMPLETED, symbols, at), self.pool.fetch(_NEXT_DAILY, symbols, at)
        )
        quotes = {r["ticker"]: Quote(r["ticker"], r["close"], r["ts"], r["interval"]) for r in completed}
        for row in upcoming:
            opened = _open_of_session_in_progress(row["ts"], at)
            known = quotes.get(row["ticker"])
            if opened is not None and (known is None or known.as_of < opened):
                quotes[row["ticker"]] = Quote(row["ticker"], row["open"], opened)
        return quotes

    async def quote(self, ticker: str, at: datetime) -> Quote | None:
        return (await self.quotes([ticker], at)).get(ticker)
