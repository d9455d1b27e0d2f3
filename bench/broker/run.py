"""Broker latency through the Alpaca adapter (issue 14): an order job on the queue -> Alpaca's
acknowledgement (the `new` event) -> the fill report applied in the engine's books.

Everything is the production wiring of `stonks run` with `STONKS_BROKER=alpaca`, pointed at
the local Alpaca server (`services/alpaca_broker/fake_server.py`, auto mode: a market order is
accepted, then filled whole at the symbol's price 5 ms later): the adapter on alpaca-py with
its rate limiter, stream, catch-up, resting stops and reconciliation; the engine's live loop
(`TradingEngine.run`, woken by a report as it arrives); the embedded PostgreSQL and Valkey.

Each order is a real decision of the engine (a buy recommendation decided, its order job
signed and recorded in the outbox). The engine's jobs are held back in a staging list, and
the bench moves one at a time onto `stonks:queue:broker_orders`: that push is where the clock
starts. It stops when `apply_report` (the fill handler) has committed the fill in
PostgreSQL. In between, the moments each stage ends are taken where the adapter and the
engine pass them (a timing wrapper each, nothing else changed):

    queued     the job pushed onto stonks:queue:broker_orders
    accepted   Alpaca's answer to the submit (status `accepted`) returned to the adapter
    new        the `new` event (Alpaca's acknowledgement) reached the adapter's stream handler
    filled     the `fill` event reached it
    reported   the adapter pushed the fill report onto stonks:queue:broker_fills
    applied    the engine's fill handler committed it (applied_fills, tax lot, stop levels)

Orders are paced (`--pace`, 1 s): each costs the account about three of its 200 requests a
minute (the submit, the account read after the fill, the resting stop's placement or
replacement), and a faster pace would measure the rate limiter's waits, not the path.

    python bench/broker/run.py [--orders 200] [--pace 1.0]

Uses the private embedded servers in a temporary directory unless STONKS_DATABASE_URL and
STONKS_REDIS_URL are set (then a database `stonks_bench_broker` is created on that server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the repository root: services, tests

from services.alpaca_broker import connection as alpaca_connection
from services.alpaca_broker.fake_server import FakeAlpaca
from services.alpaca_broker.local_venue import settings_for
from services.shared.config import load_config
from services.shared.db import connect, create_pool
from services.shared.embedded import EmbeddedServers
from services.shared.logging import configure_logging
from services.shared.migrations import upgrade
from services.shared.order_signing import OrderSigner
from services.shared.redis_keys import QUEUE_BROKER_ORDERS
from services.shared.reliable_queue import ReliableQueue
from services.trading.core.clock import SimulatedClock
from services.trading.live import account_duties
from services.trading.live.engine import TradingEngine
from services.trading.live.main_job import _database_url, _redis_db
from tests.trading.engine_harness import (
    add_bar,
    at,
    enable_engine,
    random_walk,
    recommend,
    seed_ticker,
    sessions,
)

DATABASE = "stonks_bench_broker"
REDIS_DB = 3
STAGING = "bench:staged_order_jobs"  # where the engine's jobs wait for the bench to queue them
TICKERS = [f"T{i:02d}" for i in range(20)]
PRICE = 62.0
STAGES = (
    ("queue -> submit answered (accepted)", "queued", "accepted"),
    ("submit answered -> `new` event", "accepted", "new"),
    ("`new` -> `fill` event", "new", "filled"),
    ("`fill` event -> report pushed", "filled", "reported"),
    ("report pushed -> applied in the books", "reported", "applied"),
    ("queue -> acknowledged (`new`)", "queued", "new"),
    ("acknowledged -> applied", "new", "applied"),
    ("end to end: queue -> applied", "queued", "applied"),
)


@dataclass
class Marks:
    """perf_counter() at the end of each stage of one order."""

    queued: float = 0.0
    accepted: float = 0.0
    new: float = 0.0
    filled: float = 0.0
    reported: float = 0.0
    applied: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Timings:
    def __init__(self) -> None:
        self.orders: dict[str, Marks] = {}

    def mark(self, client_order_id: str, stage: str) -> None:
        marks = self.orders.get(client_order_id)
        if marks is not None and not getattr(marks, stage):  # the first time only
            setattr(marks, stage, time.perf_counter())

    def instrument(self, broker) -> None:
        """Take each stage's moment where the adapter and the engine pass it."""
        submit = broker.api.submit_market

        async def timed_submit(job):
            order = await submit(job)
            self.mark(job.client_order_id, "accepted")
            return order

        broker.api.submit_market = timed_submit

        async def timed_update(update):
            event = getattr(update.event, "value", update.event)
            if event in ("new", "fill"):
                self.mark(update.order.client_order_id, "new" if event == "new" else "filled")
            await broker.on_trade_update(update)

        broker.stream.subscribe_trade_updates(timed_update)
        push = broker.fills.push

        async def timed_push(message: str) -> None:
            await push(message)
            self.mark(json.loads(message)["client_order_id"], "reported")

        broker.fills.push = timed_push
        apply_report = account_duties.apply_report

        async def timed_apply(pool, report, settings):
            effects = await apply_report(pool, report, settings)
            self.mark(report.client_order_id, "applied")
            if report.client_order_id in self.orders:
                self.orders[report.client_order_id].done.set()
            return effects

        account_duties.apply_report = timed_apply  # the name the engine's duties call


async def _servers() -> tuple[str, str, EmbeddedServers | None]:
    config = load_config()
    if config.database_url and config.redis_url:
        database_url, redis_url, servers = config.database_url, config.redis_url, None
    else:
        servers = EmbeddedServers(Path(tempfile.mkdtemp(prefix="stonks-bench-broker-")))
        urls = servers.ensure_running()
        database_url, redis_url = urls.database_url, urls.redis_url
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    await admin.close()
    database_url = _database_url(database_url, DATABASE)
    connection = await connect(database_url)
    await upgrade(connection)
    await connection.close()
    return database_url, _redis_db(redis_url, REDIS_DB), servers


async def _market(pool: asyncpg.Pool) -> SimulatedClock:
    """Twenty tickers at $62 in a session the clock stands in, and an engine that buys every
    recommendation in one order (tiny sizes in a large account: nothing is refused)."""
    days = []
    for i, ticker in enumerate(TICKERS):
        days = await seed_ticker(pool, ticker, random_walk(ticker), sector=f"S{i}")
    window_day = sessions(days[-1], 2)[1]
    for ticker in TICKERS:
        await add_bar(pool, ticker, window_day, PRICE, PRICE + 0.5)
    await enable_engine(
        pool,
        gradual_entry_tranches=1,
        max_open_positions=500,
        absolute_position_cap=Decimal(10**9),
        risk_tier_overrides={
            "moderate": {"base_allocation_pct": "0.0001", "max_sector_pct": "1", "max_portfolio_heat": "1"}
        },
    )
    await pool.execute("UPDATE engine_state SET epoch = $1", at(days[0], 9))
    return SimulatedClock(at(window_day, 11, 0))


def _percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value at or above `share` of them."""
    ordered = sorted(values)
    return ordered[math.ceil(share * len(ordered)) - 1]


async def main(orders: int, pace: float) -> None:
    configure_logging("WARNING")  # warnings (a retry, a 429) still show, on stderr
    database_url, redis_url, servers = await _servers()
    pool = await create_pool(database_url, max_size=12)
    redis = aioredis.from_url(redis_url)
    await redis.flushdb()
    clock = await _market(pool)
    fake = FakeAlpaca(api_key="bench-key", secret_key="bench-secret", cash=Decimal(10**8), now=clock.now)
    fake.start()
    for ticker in TICKERS:
        fake.set_price(ticker, Decimal(str(PRICE)))
    signer = OrderSigner.generate()
    config = settings_for(fake)
    broker = alpaca_connection.open_broker(config, pool, redis, clock, order_signer=signer)
    timings = Timings()
    timings.instrument(broker)
    engine = TradingEngine(pool, redis, clock, order_signer=signer)
    engine.orders = ReliableQueue(redis, STAGING)
    await engine.start()
    await broker.start()
    stop = asyncio.Event()
    loops = [asyncio.create_task(engine.run(stop)), asyncio.create_task(broker.run(stop))]
    await asyncio.wait_for(broker.stream.connected.wait(), 10)
    await asyncio.sleep(1.0)  # the first tick, the start's reconciliation and stop sync done
    progress = Progress(
        TextColumn("orders"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    started = time.perf_counter()
    with progress:
        task = progress.add_task("orders", total=orders)
        for i in range(orders):
            await recommend(pool, TICKERS[i % len(TICKERS)], clock.now())
            if await redis.blmove(STAGING, STAGING, 10, "RIGHT", "RIGHT") is None:
                raise SystemExit("the engine sent no order job within 10 s (see its decision's skip reason)")
            message = (await redis.rpop(STAGING)).decode()
            marks = timings.orders[signer.verified(message)["client_order_id"]] = Marks()
            marks.queued = time.perf_counter()
            await redis.lpush(QUEUE_BROKER_ORDERS, message)
            await asyncio.wait_for(marks.done.wait(), 30)
            progress.advance(task)
            await asyncio.sleep(max(0.0, marks.queued + pace - time.perf_counter()))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)  # the last resting stop placed before the counts below
    stop.set()
    await asyncio.gather(*loops)
    await engine.stop()

    print(f"{orders} orders, one at a time, {pace:g} s apart ({elapsed:.0f} s), milliseconds:")
    print(f"  {'stage':40} {'p50':>7} {'p99':>7} {'max':>7}")
    for name, begin, end in STAGES:
        values = [(getattr(m, end) - getattr(m, begin)) * 1000 for m in timings.orders.values()]
        print(
            f"  {name:40} {statistics.median(values):7.1f} {_percentile(values, 0.99):7.1f} {max(values):7.1f}"
        )
    with fake.lock:
        stops = sum(o.type == "stop" for o in fake.orders.values())
        requests, throttled = len(fake.requests), fake.rate_limited
    print(
        f"REST requests answered: {requests} ({throttled} refused by the server's 200/min limit, "
        f"{broker.api.retries} retried); resting stops placed or replaced: {stops}; "
        f"catch-ups: {broker.catch_ups}; reconciliations: {broker.reconciler.runs}"
    )
    fake.stop()
    await redis.aclose()
    await pool.close()
    if servers:
        servers.stop()
        shutil.rmtree(servers.root.parent, ignore_errors=True)  # the temporary directory made above


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200, help="how many orders (default 200)")
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between orders (default 1.0)")
    arguments = parser.parse_args()
    if arguments.orders < 1 or arguments.pace < 0:
        parser.error("--orders must be at least 1 and --pace not negative")
    asyncio.run(main(arguments.orders, arguments.pace))
