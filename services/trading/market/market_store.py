"""Writing market data to PostgreSQL: tickers, bars and earnings dates, in bulk.

Bars go through COPY into a temporary table and then one INSERT .. ON CONFLICT, so loading
ten thousand bars is one round trip, and loading the same bars again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from services.trading.market.market_data import EarningsDate, PriceBar, TickerInfo


async def upsert_tickers(connection: asyncpg.Connection, tickers: Iterable[TickerInfo]) -> None:
    await connection.executemany(
        """INSERT INTO tickers (ticker, name, sector, industry) VALUES ($1, $2, $3, $4)
           ON CONFLICT (ticker) DO UPDATE SET name = EXCLUDED.name, sector = EXCLUDED.sector,
                                              industry = EXCLUDED.industry""",
        [(t.ticker, t.name, t.sector, t.industry) for t in tickers],
    )


async def ensure_tickers_exist(connection: asyncpg.Connection, symbols: Iterable[str], sector: str) -> None:
    """Add tickers a CSV names but the database lacks, with the sector the user gave."""
    await connection.executemany(
        "INSERT INTO tickers (ticker, sector) VALUES ($1, $2) ON CONFLICT (ticker) DO NOTHING",
        [(symbol, sector) for symbol in sorted(set(symbols))],
    )


async def insert_bars(connection: asyncpg.Connection, bars: Sequence[PriceBar]) -> int:
    """Insert bars, replacing any already stored for the same ticker, interval and instant.
    Returns how many rows were written."""
    await connection.execute(
        "CREATE TEMP TABLE incoming_bars (LIKE price_bars INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    await connection.copy_records_to_table(
        "incoming_bars",
        records=[(b.ticker, b.interval, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars],
        columns=["ticker", "interval", "ts", "open", "high", "low", "close", "volume"],
    )
    status = await connection.execute(
        """INSERT INTO price_bars SELECT * FROM incoming_bars
           ON CONFLICT (ticker, interval, ts) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high,
               low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume"""
    )
    await connection.execute("DROP TABLE incoming_bars")
    return int(status.split()[-1])


async def upsert_earnings(connection: asyncpg.Connection, dates: Iterable[EarningsDate]) -> None:
    await connection.executemany(
        """INSERT INTO earnings_calendar (ticker, earnings_date, source, confirmed) VALUES ($1, $2, $3, $4)
           ON CONFLICT (ticker, earnings_date) DO UPDATE SET source = EXCLUDED.source,
               confirmed = EXCLUDED.confirmed, updated_at = now()""",
        [(d.ticker, d.earnings_date, d.source, d.confirmed) for d in dates],
    )
