"""Decision latency through real servers: a recommendation row committed -> its order job on
the broker queue (docs/contracts.md section 8, issue 5; target p99 under 20 ms on this machine).

The live loop runs as in production (`TradingEngine.run`, woken by PostgreSQL NOTIFY), on a
clock frozen inside a trading window so every recommendation is decidable. One recommendation
at a time gives the latency distribution: after each, untimed, the paper broker fills the job
and the engine applies the fill, so every decision meets a settled account (up to 20
positions, nothing pending), as in production. A burst, decided with nothing filled in
between, gives decisions per second.

    python bench/bench_decision_latency.py [--count 200] [--burst 300]

Uses the private embedded servers in a temporary directory unless STONKS_DATABASE_URL and
STONKS_REDIS_URL are set (then a database `stonks_bench` is created on that server).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: services, tests

from services.paper_broker.broker import PaperBroker, PaperBrokerSettings
from services.shared.config import load_config
from services.shared.db import connect, create_pool
from services.shared.embedded import EmbeddedServers
from services.shared.logging import configure_logging
from services.shared.migrations import upgrade
from services.shared.order_signing import OrderSigner
from services.shared.redis_keys import QUEUE_BROKER_ORDERS
from services.trading.core.clock import SimulatedClock
from services.trading.live.engine import TradingEngine
from services.trading.live.main_job import _database_url, _redis_db
from tests.trading.engine_harness import add_bar, at, enable_engine, random_walk, seed_ticker, sessions

TICKERS = [f"T{i:02d}" for i in range(20)]


async def _fresh(url: str) -> str:
    admin = await asyncpg.connect(url)
    await admin.execute("DROP DATABASE IF EXISTS stonks_bench WITH (FORCE)")
    await admin.execute("CREATE DATABASE stonks_bench")
    await admin.close()
    return _database_url(url, "stonks_bench")


async def _insert(pool: asyncpg.Pool, ticker: str, generated_at: datetime) -> None:
    await pool.execute(
        """INSERT INTO recommendations (ticker, action, confidence, mode, trend_window, thesis, generated_at)
           VALUES ($1, 'buy', 0.8, 'paper_eligible', '20d', 'bench', $2)""",
        ticker,
        generated_at,
    )


async def _first_job(pool: asyncpg.Pool, redis: aioredis.Redis, timeout: float = 10) -> None:
    """Block until the (empty) queue holds a job, as a broker blocks on it: BLMOVE from the
    queue's tail back onto its tail leaves it unchanged. Polling instead would steal this
    process's event loop and CPU from the engine being measured."""
    if await redis.blmove(QUEUE_BROKER_ORDERS, QUEUE_BROKER_ORDERS, timeout, "RIGHT", "RIGHT") is None:
        await _no_job(pool, timeout)


async def _jobs(pool: asyncpg.Pool, redis: aioredis.Redis, count: int, timeout: float = 60) -> None:
    """Wait until `count` jobs are queued, looking every 2 ms (a burst lasts seconds)."""
    deadline = time.perf_counter() + timeout
    while await redis.llen(QUEUE_BROKER_ORDERS) < count:
        if time.perf_counter() > deadline:
            await _no_job(pool, timeout)
        await asyncio.sleep(0.002)


async def _no_job(pool: asyncpg.Pool, timeout: float) -> None:
    # A skip sends no job: say why instead of waiting forever.
    reason = await pool.fetchval(
        "SELECT skip_reason FROM trading_decisions ORDER BY recommendation_id DESC LIMIT 1"
    )
    raise SystemExit(f"no order job after {timeout:.0f} s; the latest decision says: {reason}")


async def main(count: int, burst: int) -> None:
    # The engine logs every decision as it does in production (to stderr); the figures go to stdout.
    configure_logging("INFO")
    config = load_config()
    if config.database_url and config.redis_url:
        database_url, redis_url = await _fresh(config.database_url), _redis_db(config.redis_url, 2)
        servers = None
    else:
        servers = EmbeddedServers(Path(tempfile.mkdtemp(prefix="stonks-bench-")))
        urls = servers.ensure_running()
        database_url, redis_url = await _fresh(urls.database_url), _redis_db(urls.redis_url, 2)
    connection = await connect(database_url)
    await upgrade(connection)
    await connection.close()
    pool = await create_pool(database_url, max_size=10)
    redis = aioredis.from_url(redis_url)
    await redis.flushdb()
    days = []
    for ticker in TICKERS:
        days = await seed_ticker(pool, ticker, random_walk(ticker), sector=f"S{ticker[-1]}")
    # Each recommendation needs a price in the session the clock stands in.
    window_day = sessions(days[-1], 2)[1]
    for ticker in TICKERS:
        await add_bar(pool, ticker, window_day, 62.0, 62.5)
    # Tiny positions, a huge account: nothing in the bench is rejected for size or exposure
    # (each ticker is bought again and again, so the position limit must leave room too).
    await enable_engine(
        pool,
        gradual_entry_tranches=1,
        max_open_positions=500,
        absolute_position_cap=Decimal(10**9),
        risk_tier_overrides={
            "moderate": {"base_allocation_pct": "0.0001", "max_sector_pct": "1", "max_portfolio_heat": "1"}
        },
    )
    clock = SimulatedClock(at(window_day, 11, 0))
    signer = OrderSigner.generate()
    broker = PaperBroker.on_redis(
        pool, redis, clock, PaperBrokerSettings(starting_cash=Decimal(100_000_000)), order_signer=signer
    )
    await broker.start()
    engine = TradingEngine(pool, redis, clock, order_signer=signer)
    await engine.start()
    await pool.execute("UPDATE engine_state SET epoch = $1", at(days[0], 9))
    stop = asyncio.Event()
    loop = asyncio.create_task(engine.run(stop))
    await asyncio.sleep(0.5)  # first tick done, LISTEN in place
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        await _insert(pool, TICKERS[i % len(TICKERS)], at(window_day, 10, 30))
        await _first_job(pool, redis)
        latencies.append((time.perf_counter() - started) * 1000)
        await broker.drain()  # untimed: filled, and the fill applied, before the next one
        await engine.tick()
    started = time.perf_counter()
    for i in range(burst):
        await _insert(pool, TICKERS[i % len(TICKERS)], at(window_day, 10, 30))
    await _jobs(pool, redis, burst)
    burst_seconds = time.perf_counter() - started
    stop.set()
    await loop
    await engine.stop()
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print(f"decision latency (row committed -> job on the queue), {count} recommendations one at a time:")
    print(f"  p50 {statistics.median(latencies):.1f} ms   p99 {p99:.1f} ms   max {latencies[-1]:.1f} ms")
    print(f"burst of {burst}: {burst / burst_seconds:.0f} decisions/s ({burst_seconds:.2f} s)")
    await redis.aclose()
    await pool.close()
    if servers:
        servers.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--burst", type=int, default=300)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.count, arguments.burst))
