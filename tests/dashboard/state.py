"""Real engine state for the dashboard's browser test: the sample market (real daily bars),
the sample momentum signal's recommendations, and a replay of a stretch of history through
the live stack (engine, paper broker, Redis queues), so the API has decisions, closed
trades, open positions and end-of-day snapshots to show. Nothing here is invented."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import redis.asyncio as aioredis

from services.shared.db import connect, create_pool
from services.trading.live.replay import Replay, ReplaySummary
from services.trading.market import setup_steps
from tests.trading.engine_harness import close_pool

# Four and a half months of 2003: stop-loss exits, a take-profit (so a Reserve Pool), skips
# with reasons, and MSFT still held at the end (bought 2003-04-30).
START, END = date(2003, 1, 2), date(2003, 5, 14)
CAPITAL = Decimal(10_000)


async def build_state(
    database_url: str, redis_url: str, start: date = START, end: date = END
) -> ReplaySummary:
    connection = await connect(database_url)
    try:
        await setup_steps.load_sample_market(connection)
        await setup_steps.write_momentum_signals(connection)
    finally:
        await connection.close()
    pool = await create_pool(database_url, max_size=4)
    redis = aioredis.from_url(redis_url)
    try:
        return await Replay(pool, redis, start, end, capital=CAPITAL).run()
    finally:
        await redis.aclose()
        await close_pool(pool)
