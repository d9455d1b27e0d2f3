"""What the command line's tests share: a `stonks-trading` command run as its owner runs it, in
a process of its own, and the sample market for it to work on."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import date

import asyncpg

from services.trading.market import market_store, sample_data


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`stonks-trading ARGS` with `env` over this process's environment; its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "services.trading", *args],
        capture_output=True,
        text=True,
        # Wide enough that help and tables do not wrap the words the tests look for.
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
    )


async def load_sample_market(
    db: asyncpg.Connection, tickers: tuple[str, ...], first_day: date, last_day: date
) -> None:
    """The sample market's `tickers` and their daily bars from `first_day` to `last_day`."""
    await market_store.upsert_tickers(db, sample_data.sample_tickers(tickers))
    bars = [b for b in sample_data.load_sample_bars(tickers) if first_day <= b.ts.date() <= last_day]
    async with db.transaction():
        await market_store.insert_bars(db, bars)
