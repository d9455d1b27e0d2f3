"""A small market and a live stack (engine, paper broker, real queues) on a simulated clock,
for the engine's integration tests."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from services.paper_broker.broker import PaperBroker, PaperBrokerSettings
from services.shared.order_signing import OrderSigner
from services.trading.core.clock import SimulatedClock
from services.trading.core.trading_window import session_times
from services.trading.live.engine import TradingEngine

FIRST_SESSION = date(2024, 1, 2)
# Thirty sessions of a gentle rise: ATR(14) about 2.5 with 1% wicks, a price near 115.
RISING = [100 + i * 0.5 for i in range(30)]
# The key the tests' engines sign order jobs with and their paper brokers check.
ORDER_SIGNER = OrderSigner.from_secret("the test suite's order-signing key, never a real one")


def sessions(start: date, count: int) -> list[date]:
    days, day = [], start
    while len(days) < count:
        if session_times(day) is not None:
            days.append(day)
        day += timedelta(days=1)
    return days


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """An instant on `day`, New York wall time."""
    from services.trading.core.trading_window import NEW_YORK

    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


async def seed_ticker(
    pool: asyncpg.Pool,
    ticker: str,
    closes: Sequence[float],
    *,
    sector: str = "Technology",
    start: date = FIRST_SESSION,
    spread: float = 0.01,
) -> list[date]:
    """Daily bars for `ticker` on consecutive sessions: open = previous close, high/low
    `spread` around the body. Returns the session dates."""
    days = sessions(start, len(closes))
    await pool.execute(
        "INSERT INTO tickers (ticker, sector) VALUES ($1, $2) ON CONFLICT DO NOTHING", ticker, sector
    )
    rows, previous = [], closes[0]
    for day, close in zip(days, closes):
        open_ = previous
        high, low = max(open_, close) * (1 + spread), min(open_, close) * (1 - spread)
        rows.append(
            (
                ticker,
                "1d",
                session_times(day)[1],
                *(Decimal(str(round(v, 4))) for v in (open_, high, low, close)),
                1000,
            )
        )
        previous = close
    await pool.executemany("INSERT INTO price_bars VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", rows)
    return days


def random_walk(ticker: str, bars: int = 40) -> list[float]:
    """Closes of an independent random walk per ticker (seeded by its name): held positions
    must not all correlate at 1.0, or the correlation rule (rightly) refuses every entry after
    the first."""
    rng = random.Random(ticker)
    closes = [50.0]
    for _ in range(bars - 1):
        closes.append(round(closes[-1] * (1 + rng.gauss(0.002, 0.02)), 2))
    return closes


async def add_bar(pool: asyncpg.Pool, ticker: str, day: date, open_: float, close: float) -> None:
    high, low = max(open_, close) * 1.01, min(open_, close) * 0.99
    await pool.execute(
        "INSERT INTO price_bars VALUES ($1, '1d', $2, $3, $4, $5, $6, 1000)",
        ticker,
        session_times(day)[1],
        *(Decimal(str(round(v, 4))) for v in (open_, high, low, close)),
    )


async def recommend(
    pool: asyncpg.Pool,
    ticker: str,
    generated_at: datetime,
    *,
    action: str = "buy",
    confidence: float = 0.8,
    mode: str = "paper_eligible",
    window: str = "20d",
) -> int:
    return await pool.fetchval(
        """INSERT INTO recommendations (ticker, action, confidence, mode, trend_window, thesis, generated_at)
           VALUES ($1, $2, $3, $4, $5, 'test', $6) RETURNING id""",
        ticker,
        action,
        confidence,
        mode,
        window,
        generated_at,
    )


@dataclass
class Stack:
    pool: asyncpg.Pool
    redis: aioredis.Redis
    clock: SimulatedClock
    engine: TradingEngine
    broker: PaperBroker

    async def step(self, instant: datetime) -> None:
        """Move the clock and let the stack settle: engine decides and sends, broker fills,
        engine applies the fills."""
        self.clock.set(instant)
        await self.engine.tick()
        await self.broker.drain()
        await self.engine.tick()

    async def restart_engine(self) -> TradingEngine:
        await self.engine.stop()
        self.engine = TradingEngine(self.pool, self.redis, self.clock, order_signer=ORDER_SIGNER)
        await self.engine.start()
        return self.engine


async def enable_engine(pool: asyncpg.Pool, **columns) -> None:
    values = {"enabled": True, **columns}
    assignments = ", ".join(f"{k} = ${i + 1}" for i, k in enumerate(values))
    await pool.execute(f"UPDATE trading_engine_config SET {assignments} WHERE id = 1", *values.values())


async def build_stack(
    pool: asyncpg.Pool, redis: aioredis.Redis, start: datetime, cash: Decimal = Decimal(10_000)
) -> Stack:
    clock = SimulatedClock(start)
    broker = PaperBroker.on_redis(
        pool, redis, clock, PaperBrokerSettings(starting_cash=cash), order_signer=ORDER_SIGNER
    )
    await broker.start()
    engine = TradingEngine(pool, redis, clock, order_signer=ORDER_SIGNER)
    await engine.start()
    return Stack(pool, redis, clock, engine, broker)


async def close_pool(pool: asyncpg.Pool, timeout: float = 10) -> None:
    """Close a pool, or terminate it if a connection is still checked out."""
    try:
        await asyncio.wait_for(pool.close(), timeout)
    except TimeoutError:
        pool.terminate()


class RecordingNotifier:
    """The engine's notifier, recording each event (type, data) instead of sending it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def notify(self, event) -> None:
        self.events.append((event.event_type.value, dict(event.data)))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]
