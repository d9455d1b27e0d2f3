"""The set-up steps the CLI and the demo share: migrate, load the sample market, write signals.

Each step is idempotent, so running the demo twice leaves one copy of everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import asyncpg

from services.shared import migrations
from services.trading.market import csv_import, market_store, momentum_signal, sample_data
from services.trading.market.market_data import PriceBar

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class LoadReport:
    tickers: int
    bars: int
    earnings_dates: int
    source: str


async def upgrade_schema(connection: asyncpg.Connection) -> list[str]:
    return await migrations.upgrade(connection)


async def load_sample_market(connection: asyncpg.Connection, progress: Progress | None = None) -> LoadReport:
    tickers = sample_data.sample_tickers()
    bars = sample_data.load_sample_bars()
    earnings = sample_data.sample_earnings()
    async with connection.transaction():
        await market_store.upsert_tickers(connection, tickers)
        written = 0
        for _, ticker_bars in groupby(bars, key=lambda b: b.ticker):
            batch = list(ticker_bars)
            written += await market_store.insert_bars(connection, batch)
            if progress:
                progress(len(batch))
        await market_store.upsert_earnings(connection, earnings)
    return LoadReport(len(tickers), written, len(earnings), sample_data.SOURCE)


async def import_csv(connection: asyncpg.Connection, path: Path, sector: str) -> int:
    """Load a user's CSV of bars in one transaction; `CsvImportError` leaves nothing written."""
    bars = csv_import.read_bars_csv(path)
    async with connection.transaction():
        await market_store.ensure_tickers_exist(connection, (b.ticker for b in bars), sector)
        return await market_store.insert_bars(connection, bars)


async def _daily_bars(connection: asyncpg.Connection, ticker: str) -> list[PriceBar]:
    rows = await connection.fetch(
        "SELECT * FROM price_bars WHERE ticker = $1 AND interval = '1d' ORDER BY ts", ticker
    )
    return [
        PriceBar(r["ticker"], r["interval"], r["ts"], r["open"], r["high"], r["low"], r["close"], r["volume"])
        for r in rows
    ]


async def write_momentum_signals(connection: asyncpg.Connection, tickers: list[str] | None = None) -> int:
    """Write the momentum signal's recommendations for every (or the given) ticker's daily
    bars; a recommendation already written for the same ticker, action and instant is kept."""
    symbols = tickers or [
        r["ticker"] for r in await connection.fetch("SELECT ticker FROM tickers ORDER BY ticker")
    ]
    written = 0
    for symbol in symbols:
        drafts = momentum_signal.crossover_signals(await _daily_bars(connection, symbol))
        async with connection.transaction():
            for d in drafts:
                status = await connection.execute(
                    """INSERT INTO recommendations (ticker, action, confidence, mode, trend_window, thesis, generated_at)
                       SELECT $1, $2, $3, $4, $5, $6, $7
                       WHERE NOT EXISTS (SELECT 1 FROM recommendations
                                         WHERE ticker = $1 AND action = $2 AND generated_at = $7)""",
                    d.ticker,
                    d.action,
                    d.confidence,
                    d.mode,
                    d.trend_window,
                    d.thesis,
                    d.generated_at,
                )
                written += int(status.split()[-1])
    return written
