"""What the Alpaca broker's tests share: a broker on the real SDK against the local Alpaca
server, running its loop, and the jobs the engine would send it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal

import redis.asyncio as aioredis
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from services.alpaca_broker.api import AlpacaApi, RetryPolicy
from services.alpaca_broker.broker import AlpacaBroker
from services.alpaca_broker.fake_server import FakeAlpaca
from services.alpaca_broker.market_data import AlpacaDataApi, AlpacaPriceFeed, Cadence
from services.alpaca_broker.rate_limit import SlidingWindowLimiter
from services.alpaca_broker.stream import ReconnectingTradeStream
from services.shared.db import create_pool
from services.shared.orders import OrderJob, client_order_id
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS
from services.shared.schemas import OrderReason, OrderSide, TradingMode
from services.trading.core.clock import SimulatedClock
from services.trading.core.trading_window import session_times
from tests.trading.engine_harness import ORDER_SIGNER

SESSION = datetime(2024, 3, 5).date()
OPEN, CLOSE = session_times(SESSION)
MIDDAY = OPEN.replace(hour=OPEN.hour + 2)
KEY, SECRET = "test-key-id", "test-secret-key"
QUICK = RetryPolicy(attempts=4, first_delay_seconds=0.01, max_delay_seconds=0.05, call_timeout_seconds=10)


class Running:
    """A broker running its loop (queue, stream, catch-up) against a fake Alpaca."""

    def __init__(self, fake: FakeAlpaca, broker: AlpacaBroker, redis_client: aioredis.Redis) -> None:
        self.fake, self.broker, self.redis = fake, broker, redis_client
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.broker.start()
        self.task = asyncio.create_task(self.broker.run(self.stop))
        await until(lambda: self.broker.stream.connections >= 1, "the stream connected")

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 15)

    async def send(self, job: OrderJob) -> str:
        message = ORDER_SIGNER.sign(job)
        await self.redis.lpush(QUEUE_BROKER_ORDERS, message)
        return message

    async def reports(self) -> list[dict]:
        return [json.loads(m) for m in reversed(await self.redis.lrange(QUEUE_BROKER_FILLS, 0, -1))]

    async def wait_reports(self, count: int = 1) -> list[dict]:
        for _ in range(400):
            reports = await self.reports()
            if len(reports) >= count:
                return reports
            await asyncio.sleep(0.025)
        raise AssertionError(f"expected {count} report(s), got {await self.reports()}")


async def until(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")


def job_of(side: OrderSide, quantity: str, ticker: str = "XYZ") -> OrderJob:
    decision = uuid.uuid4()
    return OrderJob(
        job_id=uuid.uuid4(),
        client_order_id=client_order_id(decision),
        trading_decision_id=decision,
        ticker=ticker,
        side=side,
        quantity=Decimal(quantity),
        reason=OrderReason.ENTRY,
        created_at=MIDDAY,
    )


def api_of(fake: FakeAlpaca) -> AlpacaApi:
    client = TradingClient(KEY, SECRET, paper=True, url_override=fake.base_url)
    return AlpacaApi(client, SlidingWindowLimiter(), QUICK)


def price_feed_of(fake: FakeAlpaca, pool, clock, *, cadence: Cadence = Cadence()) -> AlpacaPriceFeed:
    """Alpaca's prices into `pool`'s tables through the real SDK, one limiter for both APIs."""
    trading = api_of(fake)
    client = StockHistoricalDataClient(KEY, SECRET, url_override=fake.base_url)
    data = AlpacaDataApi(client, trading.limiter, QUICK, feed=DataFeed.IEX)
    return AlpacaPriceFeed(pool, clock, data, trading, cadence)


async def make_brokers(
    database_url: str, redis_client: aioredis.Redis
) -> AsyncIterator[Callable[..., Running]]:
    pool = await create_pool(database_url)
    started: list[Running] = []

    def build(*, cash: str = "100000", fill_mode: str = "manual", **broker_kwargs) -> Running:
        fake = FakeAlpaca(api_key=KEY, secret_key=SECRET, cash=Decimal(cash), fill_mode=fill_mode).start()
        fake.set_price("XYZ", "50.00")
        stream = ReconnectingTradeStream(
            KEY,
            SECRET,
            paper=True,
            url_override=fake.stream_url,
            min_backoff_seconds=0.05,
            max_backoff_seconds=0.2,
        )
        broker = AlpacaBroker.on_redis(
            pool,
            redis_client,
            SimulatedClock(MIDDAY),
            api_of(fake),
            stream,
            order_signer=ORDER_SIGNER,
            mode=TradingMode.PAPER,
            catch_up_seconds=60,  # long: these tests must see the reconnection catch up, not the timer
            **broker_kwargs,
        )
        running = Running(fake, broker, redis_client)
        started.append(running)
        return running

    yield build
    for running in started:
        await running.close()
        running.fake.stop()
    await pool.close()


def successor(broker: AlpacaBroker, fake: FakeAlpaca, **broker_kwargs) -> AlpacaBroker:
    """A new broker process on the same database, queues and Alpaca account."""
    return AlpacaBroker(
        broker.pool,
        broker.orders,
        broker.fills,
        broker.clock,
        AlpacaApi(broker.api.client, SlidingWindowLimiter(), QUICK),
        ReconnectingTradeStream(
            KEY,
            SECRET,
            paper=True,
            url_override=fake.stream_url,
            min_backoff_seconds=0.05,
            max_backoff_seconds=0.2,
        ),
        order_signer=ORDER_SIGNER,
        mode=TradingMode.PAPER,
        catch_up_seconds=60,
        **broker_kwargs,
    )
