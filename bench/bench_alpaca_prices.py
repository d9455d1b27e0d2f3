"""Alpaca's prices into the price tables (issue 14): how long the first catch-up takes and how
many requests a whole session of the schedule spends, through the real SDK against the local
Alpaca server, on a simulated clock.

    python bench/bench_alpaca_prices.py [--tickers 100] [--days 400]

The catch-up: every ticker's daily bars of `--days` days and the session's minute bars so
far, at 11:30 New York. Then the session from 11:30 to the close and 20 minutes past it, one
round every 15 s of market time (the trades move every round): requests a minute at the
busiest, against the account's budget of 200. Uses the private embedded servers in a
temporary directory unless STONKS_DATABASE_URL is set (then a database `stonks_bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time as clock_time
from bisect import bisect_left
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: services, tests

from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from services.alpaca_broker import fake_server
from services.alpaca_broker.api import AlpacaApi
from services.alpaca_broker.fake_server import FakeAlpaca, FakeBar
from services.alpaca_broker.market_data import AlpacaDataApi, AlpacaPriceFeed
from services.alpaca_broker.rate_limit import SlidingWindowLimiter
from services.shared.config import load_config
from services.shared.db import connect, create_pool
from services.shared.embedded import EmbeddedServers
from services.shared.migrations import upgrade
from services.trading.core import trading_window
from services.trading.core.clock import SimulatedClock
from services.trading.live.main_job import _database_url
from tests.alpaca_broker.harness import KEY, QUICK, SECRET

SESSION = date(2024, 3, 5)
BUDGET = 200


async def _database() -> tuple[str, EmbeddedServers | None]:
    config = load_config()
    servers = None
    url = config.database_url
    if not url:
        servers = EmbeddedServers(Path(tempfile.mkdtemp(prefix="stonks-bench-")))
        url = servers.ensure_running().database_url
    admin = await asyncpg.connect(url)
    await admin.execute("DROP DATABASE IF EXISTS stonks_bench WITH (FORCE)")
    await admin.execute("CREATE DATABASE stonks_bench")
    await admin.close()
    url = _database_url(url, "stonks_bench")
    connection = await connect(url)
    await upgrade(connection)
    await connection.close()
    return url, servers


def _market(fake: FakeAlpaca, tickers: list[str], days: int, rng: random.Random) -> None:
    opens, closes = trading_window.session_times(SESSION)
    history = [
        d
        for d in (SESSION - timedelta(days=n) for n in range(days, 0, -1))
        if trading_window.session_times(d) is not None
    ]
    for ticker in tickers:
        price = Decimal(rng.randrange(2_000, 40_000)) / 100
        daily = [
            FakeBar(
                datetime.combine(d, time.min, trading_window.NEW_YORK),
                price,
                price + 1,
                price - 1,
                price,
                10**6,
            )
            for d in history
        ]
        minutes = [
            FakeBar(opens + timedelta(minutes=m), price, price, price, price, 500)
            for m in range(int((closes - opens).total_seconds() // 60))
        ]
        fake.set_bars(ticker, "1Day", daily)
        fake.set_bars(ticker, "1Min", minutes)
        fake.set_price(ticker, price)


def _busiest_minute(moments: list[datetime]) -> int:
    moments = sorted(moments)
    return max((bisect_left(moments, m + timedelta(minutes=1)) - i for i, m in enumerate(moments)), default=0)


async def main(tickers: int, days: int) -> None:
    url, servers = await _database()
    pool = await create_pool(url, max_size=4)
    opens, closes = trading_window.session_times(SESSION)
    clock = SimulatedClock(opens + timedelta(hours=2))
    fake = FakeAlpaca(api_key=KEY, secret_key=SECRET, now=clock.now).start()
    rng = random.Random(14)
    symbols = [f"T{i:03d}" for i in range(tickers)]
    await pool.executemany(
        "INSERT INTO tickers (ticker, sector) VALUES ($1, 'Technology')", [(s,) for s in symbols]
    )
    _market(fake, symbols, days, rng)
    # Hours of market time pass in seconds: the account's limiter counts market time (a wait
    # moves the clock on), and the server's own limit, which counts real time, is lifted.
    fake_server.RATE_LIMIT_PER_MINUTE = 10**9

    async def wait(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))

    limiter = SlidingWindowLimiter(now=lambda: clock.now().timestamp(), sleep=wait)
    trading = AlpacaApi(TradingClient(KEY, SECRET, paper=True, url_override=fake.base_url), limiter, QUICK)
    data = AlpacaDataApi(StockHistoricalDataClient(KEY, SECRET, url_override=fake.base_url), limiter, QUICK)
    feed = AlpacaPriceFeed(pool, clock, data, trading)
    try:
        started = clock_time.perf_counter()
        await feed.tick()
        took = clock_time.perf_counter() - started
        daily = await pool.fetchval("SELECT count(*) FROM price_bars WHERE interval = '1d'")
        minutes = await pool.fetchval("SELECT count(*) FROM price_bars WHERE interval = '1m'")
        print(
            f"catch-up: {tickers} tickers, {daily:,} daily + {minutes:,} minute bars in {took:.2f} s "
            f"({(daily + minutes) / took:,.0f} bars/s), {len(fake.requests)} requests"
        )
        asked: list[datetime] = []
        before = len(fake.requests)
        rounds = 0
        started = clock_time.perf_counter()
        while clock.now() < closes + timedelta(minutes=20):
            clock.advance(timedelta(seconds=15))
            for symbol in symbols:
                fake.set_price(symbol, fake.prices[symbol] + Decimal(rng.choice((-1, 1))) / 100)
            count = len(fake.requests)
            await feed.tick()
            asked += [clock.now()] * (len(fake.requests) - count)
            rounds += 1
        took = clock_time.perf_counter() - started
        last = await pool.fetchval("SELECT count(*) FROM price_bars WHERE interval = 'last'")
        print(
            f"session: {rounds} rounds ({rounds / took:.0f}/s of wall time), {len(fake.requests) - before} "
            f"requests, busiest minute {_busiest_minute(asked)} of {BUDGET}, {last:,} latest prices, "
            f"{fake.rate_limited} refused by the server's limit"
        )
    finally:
        fake.stop()
        await pool.close()
        if servers is not None:
            servers.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--days", type=int, default=400)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.tickers, arguments.days))
