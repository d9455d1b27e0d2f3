"""Gathering what the decision core needs to know about the market, from PostgreSQL: a
ticker's sector, price, ATR(14) of daily and intraday bars, sessions until its next earnings,
and whether a high-severity macro event is in progress. Only bars complete at `now` count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.trading.core import stop_loss_manager
from services.trading.core.decision import MarketView
from services.trading.core.quote import Quote
from services.trading.core.stop_loss_manager import ATR_LOOKBACK_BARS
from services.trading.core.trading_window import NEW_YORK, sessions_until
from services.trading.market.market_data import INTRADAY_BARS
from services.trading.market.price_book import PriceBook


def atr_from_rows(rows: Sequence[asyncpg.Record]) -> Decimal | None:
    """ATR(14) of bars given newest first; None when there are too few."""
    bars = [stop_loss_manager.Bar(r["high"], r["low"], r["close"]) for r in reversed(rows)]
    if len(bars) < 15:
        return None
    return stop_loss_manager.average_true_range(bars)


class MarketViewStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.prices = PriceBook(pool)

    async def high_severity_event(self, now: datetime) -> bool:
        return bool(
            await self.pool.fetchval(
                """SELECT EXISTS (SELECT 1 FROM macro_events WHERE severity = 'high' AND starts_at <= $1
                              AND (ends_at IS NULL OR ends_at > $1))""",
                now,
            )
        )

    async def atr(self, ticker: str, now: datetime, intervals: Iterable[str] = ("1d",)) -> Decimal | None:
        rows = await self.pool.fetch(
            """SELECT high, low, close FROM price_bars WHERE ticker = $1 AND interval = ANY($2::text[]) AND ts <= $3
               ORDER BY ts DESC LIMIT $4""",
            ticker,
            list(intervals),
            now,
            ATR_LOOKBACK_BARS,
        )
        return atr_from_rows(rows)

    async def sessions_until_earnings(self, ticker: str, now: datetime) -> int | None:
        today = now.astimezone(NEW_YORK).date()
        upcoming = await self.pool.fetchval(
            "SELECT min(earnings_date) FROM earnings_calendar WHERE ticker = $1 AND earnings_date >= $2",
            ticker,
            today,
        )
        return None if upcoming is None else sessions_until(now, upcoming)

    async def view(
        self,
        ticker: str,
        now: datetime,
        *,
        quote: Quote | None = None,
        high_severity_event: bool | None = None,
    ) -> MarketView:
        # The facts and the bars at once (decision latency): the bars are wasted only on an
        # unknown ticker, which is rare and skipped anyway.
        facts, bars = await asyncio.gather(
            self.pool.fetchrow(_FACTS, ticker, now, now.astimezone(NEW_YORK).date()),
            self.pool.fetch(_RECENT_BARS, ticker, now, ATR_LOOKBACK_BARS),
        )
        if facts["sector"] is None:
            return MarketView(ticker_known=False)
        quote = quote or await self.prices.quote(ticker, now)
        upcoming = facts["next_earnings"]
        return MarketView(
            ticker_known=True,
            sector=facts["sector"],
            price=quote.price if quote else None,
            price_as_of=quote.as_of if quote else None,
            price_interval=quote.interval if quote else "1d",
            daily_atr=atr_from_rows([b for b in bars if b["interval"] == "1d"]),
            intraday_atr=atr_from_rows([b for b in bars if b["interval"] in INTRADAY_BARS]),
            sessions_until_earnings=None if upcoming is None else sessions_until(now, upcoming),
            high_severity_event=facts["high_severity"]
            if high_severity_event is None
            else high_severity_event,
        )


# One round trip for the facts a decision needs besides bars (latency matters: issue 5).
_FACTS = """
SELECT (SELECT sector FROM tickers WHERE ticker = $1) AS sector,
       (SELECT min(earnings_date) FROM earnings_calendar WHERE ticker = $1 AND earnings_date >= $3) AS next_earnings,
       EXISTS (SELECT 1 FROM macro_events WHERE severity = 'high' AND starts_at <= $2
               AND (ends_at IS NULL OR ends_at > $2)) AS high_severity
"""

# The latest bars of each interval, newest first, in one round trip.
_RECENT_BARS = """
SELECT * FROM (
    SELECT interval, high, low, close, ts,
           row_number() OVER (PARTITION BY interval ORDER BY ts DESC) AS n
    FROM price_bars WHERE ticker = $1 AND ts <= $2 AND interval <> 'last'
) bars WHERE n <= $3 ORDER BY interval, ts DESC
"""
