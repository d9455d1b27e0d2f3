"""A slice of the sample market in a test's database: some tickers, some sessions."""

from __future__ import annotations

from datetime import date

import asyncpg

from services.trading.market import market_store, sample_data


async def load_sample_market(
    db: asyncpg.Connection,
    tickers: tuple[str, ...],
    first_day: date,
    last_day: date,
    *,
    earnings: bool = False,
) -> None:
    """The sample market's `tickers` and their daily bars from `first_day` to `last_day`, and
    their earnings dates if asked."""
    await market_store.upsert_tickers(db, sample_data.sample_tickers(tickers))
    bars = [b for b in sample_data.load_sample_bars(tickers) if first_day <= b.ts.date() <= last_day]
    async with db.transaction():
        await market_store.insert_bars(db, bars)
    if earnings:
        await market_store.upsert_earnings(db, sample_data.sample_earnings(tickers))
