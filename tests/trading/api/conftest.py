"""An API client on the real app, database and Redis (no fakes): `api` serves a Runtime
around a test pool with a simulated clock; `traded` adds a small history made by the live
stack (engine, paper broker, queues), so the read endpoints have real rows to show."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from services.shared.db import create_pool
from services.trading.api.auth import ApiToken
from services.trading.api.runtime import Runtime
from services.trading.api.settings import ReadAccess
from services.trading.app import create_app
from services.trading.core.clock import SimulatedClock
from tests.trading.engine_harness import (
    RISING,
    Stack,
    add_bar,
    at,
    build_stack,
    close_pool,
    enable_engine,
    recommend,
    seed_ticker,
    sessions,
)

TOKEN = "test-token-0123456789-abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    client: httpx.AsyncClient
    runtime: Runtime
    clock: SimulatedClock

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=8)
    yield pool
    await close_pool(pool)


async def serve(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime, dashboard_dir=None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


def make_runtime(pool: asyncpg.Pool, redis: aioredis.Redis, clock: SimulatedClock, **kwargs) -> Runtime:
    kwargs.setdefault("read_access", ReadAccess.NEVER)
    return Runtime(pool, redis, clock, ApiToken.from_secret(TOKEN), **kwargs)


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    clock = SimulatedClock(at(date(2024, 3, 1), 10))
    runtime = make_runtime(pool, redis_client, clock)
    async for client in serve(runtime):
        yield Api(client, runtime, clock)


@dataclass
class History:
    stack: Stack
    days: list[date]
    bought_day: date
    exit_day: date
    thesis: str = "test"


async def make_history(pool: asyncpg.Pool, redis: aioredis.Redis) -> History:
    """XYZ bought and closed at its take-profit (a closed trade with a thesis, a siphon into the
    Reserve Pool), ABC bought and still held with its stops, and a skip (unknown ticker). The
    caller stops `history.stack.engine`."""
    days = await seed_ticker(pool, "XYZ", RISING)
    # ABC zigzags up: its daily returns do not move with XYZ's, so holding XYZ (or having its
    # buy on the way) does not refuse ABC for correlation.
    await seed_ticker(pool, "ABC", [50 + i * 0.25 + (i % 2) * 0.6 for i in range(30)], sector="Energy")
    await enable_engine(pool, gradual_entry_tranches=1)
    stack = await build_stack(pool, redis, at(days[-1], 16, 5))
    bought_day, exit_day = sessions(days[-1], 3)[1:]
    await add_bar(pool, "XYZ", bought_day, open_=115.0, close=116.0)
    await add_bar(pool, "ABC", bought_day, open_=57.5, close=57.6)
    await recommend(pool, "XYZ", at(days[-1], 16, 10))
    await recommend(pool, "ABC", at(days[-1], 16, 11), confidence=0.75)
    await recommend(pool, "NOPE", at(days[-1], 16, 12))
    await stack.step(at(bought_day, 9, 45))
    take_profit = await pool.fetchval(
        "SELECT take_profit_price FROM position_stop_levels WHERE active AND ticker = 'XYZ'"
    )
    await add_bar(pool, "XYZ", exit_day, open_=float(take_profit) + 1, close=float(take_profit) + 2)
    await add_bar(pool, "ABC", exit_day, open_=57.7, close=57.8)
    await stack.step(at(exit_day, 9, 45))
    return History(stack, days, bought_day, exit_day)


@pytest.fixture
async def traded(pool: asyncpg.Pool, redis_client: aioredis.Redis) -> AsyncIterator[tuple[Api, History]]:
    history = await make_history(pool, redis_client)
    try:
        runtime = make_runtime(pool, redis_client, history.stack.clock, engine=history.stack.engine)
        async for client in serve(runtime):
            yield Api(client, runtime, history.stack.clock), history
    finally:
        await history.stack.engine.stop()
