"""The two long-running jobs: `demo` (history replayed through the live stack on a simulated
clock, the dashboard up; on the paper broker, or through the Alpaca adapter at the local
Alpaca server) and `run` (the same stack on the wall clock, for real use).

The demo works in a database of its own (`stonks_demo`, rebuilt on every run) and Redis
database 1, so a demo never touches the state of a real account.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis
import structlog

from services.alpaca_broker import connection as alpaca_connection
from services.alpaca_broker.broker import AlpacaBroker
from services.alpaca_broker.local_venue import LocalAlpacaReport, LocalAlpacaVenue
from services.paper_broker.broker import PaperBroker, PaperBrokerSettings
from services.shared.config import AppConfig, BrokerName
from services.shared.db import connect, create_pool
from services.shared.heartbeat import Heartbeat
from services.shared.pause import pause_unless_stopped
from services.shared.runtime import order_signer, resolve_server_urls
from services.trading.core.clock import Clock, WallClock
from services.trading.live import read_model
from services.trading.live.engine import TradingEngine
from services.trading.live.replay import PaperVenue, Replay, ReplaySummary
from services.trading.market import setup_steps
from services.trading.notifications.assembly import open_notification_service
from services.trading.notifications.service import NotificationService

log = structlog.get_logger(__name__)
DEMO_DATABASE = "stonks_demo"
DEMO_REDIS_DB = 1


@dataclass(frozen=True, slots=True)
class RuntimeParts:
    """What a job hands its API server: the API reports on this engine, never runs a second."""

    pool: asyncpg.Pool
    redis: aioredis.Redis
    clock: Clock
    engine: TradingEngine
    notifications: NotificationService | None = None
    engine_loop_in_process: bool = False  # `run`: the job runs the engine's loop (not the demo's replay)
    paper_broker_loop: Heartbeat | None = None  # `run --paper-broker`: the broker's loop runs beside
    # Which broker the engine's orders go to, for /status and the dashboard: the demo's replay
    # always fills on paper; `run` names the configured one (beside it or in its own process).
    broker: BrokerName = BrokerName.PAPER


ApiServer = Callable[[RuntimeParts], Awaitable[None]]


class DemoBroker(StrEnum):
    """Where the demo's orders are filled."""

    PAPER = "paper"  # the built-in paper broker
    ALPACA_LOCAL = "alpaca-local"  # the Alpaca adapter, at the local Alpaca server


# The sessions replayed unless the command says otherwise. Through the Alpaca adapter, two
# months in which the engine buys, trails its stops and is stopped out twice at the broker:
# every REST call takes a turn in the account's 200-a-minute budget, as at Alpaca.
DEMO_WINDOWS = {
    DemoBroker.PAPER: (date(2011, 3, 1), date(2013, 2, 28)),
    DemoBroker.ALPACA_LOCAL: (date(2011, 9, 1), date(2011, 10, 31)),
}


@dataclass(frozen=True, slots=True)
class DemoPlan:
    start: date
    end: date
    capital: Decimal
    serve: bool
    host: str
    port: int
    broker: DemoBroker = DemoBroker.PAPER


def _database_url(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _redis_db(url: str, index: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{index}"))


async def fresh_demo_database(server_url: str) -> str:
    """Drop and recreate the demo's own database; return its URL."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {DEMO_DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DEMO_DATABASE}")
    finally:
        await admin.close()
    return _database_url(server_url, DEMO_DATABASE)


async def prepare_demo(
    config: AppConfig, on_bars: Callable[[int], None]
) -> tuple[str, str, setup_steps.LoadReport, int]:
    """Servers up, a fresh demo database migrated and loaded with the sample and signals."""
    urls = resolve_server_urls(config)
    database_url = await fresh_demo_database(urls.database_url)
    redis_url = _redis_db(urls.redis_url, DEMO_REDIS_DB)
    connection = await connect(database_url)
    try:
        await setup_steps.upgrade_schema(connection)
        report = await setup_steps.load_sample_market(connection, on_bars)
        signals = await setup_steps.write_momentum_signals(connection)
    finally:
        await connection.close()
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    return database_url, redis_url, report, signals


@dataclass(frozen=True, slots=True)
class TierMove:
    at: datetime
    previous_tier: str
    new_tier: str
    reason: str


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """The replay's figures, with the risk tier's moves (oldest first) and how many closes
    held it: the autopilot's record over the replay."""

    replay: ReplaySummary
    tier_moves: tuple[TierMove, ...]
    tier_held: int
    alpaca: LocalAlpacaReport | None = None  # `--broker alpaca-local`: the broker's side


async def tier_record(pool: asyncpg.Pool) -> tuple[tuple[TierMove, ...], int]:
    changed = await read_model.tier_history(pool, verdict="changed", limit=10_000, offset=0)
    held = await read_model.tier_history(pool, verdict="held", limit=0, offset=0)
    moves = tuple(
        TierMove(r["created_at"], r["previous_tier"], r["new_tier"], r["reason"] or r["trigger_source"])
        for r in reversed(changed.items)
    )
    return moves, held.total


async def replay_demo(
    database_url: str,
    redis_url: str,
    plan: DemoPlan,
    on_session: Callable[[date], None],
    on_finished: Callable[[DemoSummary], None],
    serve_api: ApiServer | None,
) -> None:
    """Replay the plan's sessions and report the summary as soon as the replay ends; the API
    (if given) serves the same database meanwhile and after, until interrupted."""
    pool = await create_pool(database_url, max_size=12)
    redis = aioredis.from_url(redis_url)
    alpaca = plan.broker is DemoBroker.ALPACA_LOCAL
    replay = Replay(
        pool,
        redis,
        plan.start,
        plan.end,
        capital=plan.capital,
        venue=LocalAlpacaVenue if alpaca else PaperVenue,
    )
    broker = BrokerName.ALPACA if alpaca else BrokerName.PAPER
    api = (
        asyncio.create_task(serve_api(RuntimeParts(pool, redis, replay.clock, replay.engine, broker=broker)))
        if serve_api
        else None
    )
    try:
        try:
            summary = await replay.run(on_session)
            venue = replay.venue
            alpaca_report = await venue.report() if isinstance(venue, LocalAlpacaVenue) else None
        finally:
            await replay.close()  # the dashboard reads PostgreSQL only: the local Alpaca can go
        on_finished(DemoSummary(summary, *await tier_record(pool), alpaca=alpaca_report))
        if api is not None:
            await api
    finally:
        if api is not None and not api.done():
            api.cancel()
        await redis.aclose()
        await pool.close()


RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0


async def supervise(
    name: str,
    work: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    first_delay: float = RESTART_FIRST_SECONDS,
) -> int:
    """Run `work()` until `stop`; if it dies (or returns early), say so loudly and start it
    again after a growing pause: a dead broker or engine loop would otherwise leave orders
    unfilled while the API still looks healthy. Returns how many restarts it took."""
    restarts, delay = 0, first_delay
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            await work()
            if stop.is_set():
                break
            log.error("a long-running task returned before stop; restarting it", task=name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a long-running task died; restarting it", task=name)
        restarts += 1
        if loop.time() - started > RESTART_MAX_SECONDS:
            delay = first_delay  # it ran well for a while: this is a new failure, not a crash loop
        await pause_unless_stopped(stop, delay)
        delay = min(delay * 2, RESTART_MAX_SECONDS)
    return restarts


async def _restartable(broker: PaperBroker | AlpacaBroker, stop: asyncio.Event) -> None:
    """The broker's loop, taking back (at each restart) the job it was handling when it died."""
    await broker.start()
    await broker.run(stop)


async def run_live(
    config: AppConfig,
    *,
    paper_broker: bool,
    capital: Decimal,
    serve_api: ApiServer,
    clock: Clock | None = None,
) -> None:
    """The engine (and the paper broker, unless a real broker consumes the queue) on the wall
    clock, with the API, until SIGINT/SIGTERM. `clock` replaces the wall clock only for the
    reliability soak, which runs this same wiring inside a past session."""
    alpaca_api = None
    clock = clock or WallClock()
    if paper_broker and config.broker is BrokerName.ALPACA:
        # The account first, before any server starts: bad keys or a blocked account end the
        # job at once with Alpaca's reason (`BrokerRejected`), and the owner sees which account
        # (paper or live) is about to be traded before anything else happens.
        alpaca_api = alpaca_connection.open_api(config)
        await alpaca_connection.announce(alpaca_api, config.trading_mode)
    urls = resolve_server_urls(config)
    signer = order_signer(config)
    connection = await connect(urls.database_url)
    try:
        await setup_steps.upgrade_schema(connection)
    finally:
        await connection.close()
    pool = await create_pool(urls.database_url, max_size=12)
    redis = aioredis.from_url(urls.redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    notifications = await open_notification_service(pool, redis, clock, trading_config=config.trading)
    await notifications.start()
    prices = None
    if alpaca_api is not None:
        # Prices from Alpaca's market data; its calendar checked against XNYS before the
        # engine trades, so the engine's first decision already sees the stricter sessions.
        prices = alpaca_connection.open_price_feed(config, pool, clock, alpaca_api)
        await prices.check_calendar()
    engine = TradingEngine(
        pool, redis, clock, mode=config.trading_mode, order_signer=signer, notifier=notifications
    )
    await engine.start()
    await engine.store.apply_environment(config.trading)
    broker: PaperBroker | AlpacaBroker | None = None
    if alpaca_api is not None:
        broker = alpaca_connection.open_broker(
            config, pool, redis, clock, order_signer=signer, api=alpaca_api, notifier=notifications
        )
    elif paper_broker:
        broker = PaperBroker.on_redis(
            pool, redis, clock, PaperBrokerSettings(starting_cash=capital), order_signer=signer
        )
    parts = RuntimeParts(
        pool,
        redis,
        clock,
        engine,
        notifications,
        engine_loop_in_process=True,
        paper_broker_loop=broker.heartbeat if broker is not None else None,
        broker=config.broker,
    )
    tasks = [
        asyncio.create_task(supervise("engine", lambda: engine.run(stop), stop)),
        asyncio.create_task(serve_api(parts)),
    ]
    if broker is not None:
        name = "alpaca broker" if isinstance(broker, AlpacaBroker) else "paper broker"
        tasks.append(asyncio.create_task(supervise(name, lambda: _restartable(broker, stop), stop)))
    if prices is not None:
        tasks.append(asyncio.create_task(supervise("alpaca market data", lambda: prices.run(stop), stop)))
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.stop()
        await notifications.stop()
        await redis.aclose()
        await pool.close()
