"""What the routes work with: the servers, the clock, the engine (if any) and the token.

`create_app(runtime)` serves a `Runtime` built by its caller: tests and the demo build one
around their own pool, clock and engine (`run_engine=False`: the caller drives the engine, the
API only reports on it). `create_app()` with no runtime builds one at start-up from the
environment (`open_runtime`) and, unless `STONKS_API_RUN_ENGINE=false`, runs the engine loop
in this process (`EngineRunner`), as seed task 20.1 asks of the lifespan.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import redis.asyncio as aioredis
import structlog

from services.shared import migrations
from services.shared.config import AppConfig, BrokerName, TradingConfig
from services.shared.db import create_pool
from services.shared.heartbeat import Heartbeat
from services.shared.runtime import order_signer, resolve_server_urls
from services.shared.schemas import TradingMode
from services.trading.api.auth import TOKEN_FILE_NAME, ApiToken, resolve_token
from services.trading.api.guard import LOOPBACK_NAMES, served_names
from services.trading.api.jobs import BacktestJobs
from services.trading.api.settings import ApiSettings, ReadAccess, load_api_settings
from services.trading.core.clock import Clock, WallClock
from services.trading.live.engine import TradingEngine
from services.trading.live.engine_store import EngineStore
from services.trading.live.main_job import RuntimeParts, supervise
from services.trading.notifications.assembly import open_notification_service
from services.trading.notifications.service import NotificationService

if TYPE_CHECKING:
    import asyncpg

log = structlog.get_logger(__name__)
POOL_SIZE = 12  # the engine keeps two (its lock and its LISTEN); the rest serve requests and backtests


class NotificationSettingsSink(Protocol):
    """The running notification service: told when the owner saves new settings."""

    def update_settings(self, settings: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Runtime:
    pool: asyncpg.Pool
    redis: aioredis.Redis
    clock: Clock
    token: ApiToken
    engine: TradingEngine | None = None
    # Start `engine` (take its lock, rebuild its state) and run its loop for the app's life.
    # False: the engine, if any, is driven by the caller; the API reports on it only.
    run_engine: bool = False
    # The caller runs `engine.run` in this process (`stonks run`): /ready checks the loop, its
    # lock and its wake-up as for an engine the app runs. False for the demo's replayed engine.
    engine_loop_in_process: bool = False
    paper_broker_loop: Heartbeat | None = None  # the paper broker beside it (`stonks run`), for /ready
    read_access: ReadAccess = ReadAccess.AUTO
    api_host: str = "127.0.0.1"
    allowed_hosts: frozenset[str] = LOOPBACK_NAMES  # the Host names requests may give (guard.py)
    trading: TradingConfig | None = None  # environment fallback for notification recipients
    notifications: NotificationSettingsSink | None = None
    backtests: BacktestJobs = field(default_factory=BacktestJobs)
    # One parameter search at a time: it already uses every core it is given.
    optimizations: BacktestJobs = field(default_factory=lambda: BacktestJobs(1, "optimization"))
    ray_address: str | None = None  # where optimizations run: STONKS_RAY_ADDRESS, else a local Ray
    ray_num_cpus: int | None = None
    owns_connections: bool = False  # close the pool and Redis client when the app stops
    # Paper or live, and which broker: shown on /status and the dashboard. An attached engine's
    # own mode wins (`trading_mode_now`); these are the settings for a process without one.
    trading_mode: TradingMode = TradingMode.PAPER
    broker: BrokerName = BrokerName.PAPER

    @property
    def trading_mode_now(self) -> TradingMode:
        return self.engine.mode if self.engine is not None else self.trading_mode

    @property
    def notifier(self) -> Any | None:
        """Where the owner's own actions are announced (a tier change): the engine's notifier,
        else this app's notification service; None when this process has neither (`serve`)."""
        if self.engine is not None:
            return self.engine.notifier
        return self.notifications if hasattr(self.notifications, "notify") else None

    @property
    def store(self) -> EngineStore:
        return self.engine.store if self.engine is not None else EngineStore(self.pool)


async def open_runtime(config: AppConfig, api: ApiSettings) -> Runtime:
    """Connect to the configured servers (starting private ones when no URL is set), bring the
    schema up to date, and settle the token."""
    token = resolve_token(config.api_token, api.token_file or config.data_dir / TOKEN_FILE_NAME)
    urls = await asyncio.to_thread(resolve_server_urls, config)
    pool = await create_pool(urls.database_url, max_size=POOL_SIZE)
    try:
        async with pool.acquire() as connection:
            await migrations.upgrade(connection)
        redis = aioredis.from_url(urls.redis_url)
        clock = WallClock()
        engine, notifications = None, None
        if api.run_engine:
            # The engine this app runs alerts the owner as `stonks-trading run`'s does (the
            # chart's deployment runs this path).
            notifications = await open_notification_service(pool, redis, clock, trading_config=config.trading)
            engine = TradingEngine(
                pool,
                redis,
                clock,
                mode=config.trading_mode,
                order_signer=order_signer(config),
                notifier=notifications,
            )
            await engine.store.apply_environment(config.trading)
            await notifications.start()
    except BaseException:
        await pool.close()
        raise
    return Runtime(
        pool,
        redis,
        clock,
        token,
        engine=engine,
        run_engine=api.run_engine,
        read_access=api.protect_reads,
        api_host=config.api_host,
        allowed_hosts=served_names(config.api_host, config.allowed_host_names),
        trading=config.trading,
        notifications=notifications,
        backtests=BacktestJobs(api.max_backtests),
        ray_address=config.ray_address,
        ray_num_cpus=config.ray_num_cpus,
        owns_connections=True,
        trading_mode=config.trading_mode,
        broker=config.broker,
    )


def attached_runtime(config: AppConfig, parts: RuntimeParts, api: ApiSettings | None = None) -> Runtime:
    """A runtime around servers and an engine its caller owns and drives (`run`, `demo`): the
    token and read access come from the environment as for `open_runtime`; the app starts
    nothing and closes nothing, and /ready checks the loops the caller runs beside it."""
    api = api or load_api_settings()
    token = resolve_token(config.api_token, api.token_file or config.data_dir / TOKEN_FILE_NAME)
    return Runtime(
        parts.pool,
        parts.redis,
        parts.clock,
        token,
        engine=parts.engine,
        run_engine=False,
        engine_loop_in_process=parts.engine_loop_in_process,
        paper_broker_loop=parts.paper_broker_loop,
        read_access=api.protect_reads,
        api_host=config.api_host,
        allowed_hosts=served_names(config.api_host, config.allowed_host_names),
        trading=config.trading,
        notifications=parts.notifications,
        backtests=BacktestJobs(api.max_backtests),
        ray_address=config.ray_address,
        ray_num_cpus=config.ray_num_cpus,
        trading_mode=config.trading_mode,
        broker=parts.broker,
    )


async def close_runtime(runtime: Runtime) -> None:
    if not runtime.owns_connections:
        return
    if isinstance(runtime.notifications, NotificationService):
        await runtime.notifications.stop()  # queued alerts go out (or are recorded as failed) first
    await runtime.redis.aclose()
    try:
        await asyncio.wait_for(runtime.pool.close(), 10)
    except TimeoutError:
        runtime.pool.terminate()


class EngineRunner:
    """The engine loop as a task of the app: start (waiting for the account lock if another
    engine holds it, without holding up the server), run, and stop gracefully."""

    def __init__(self, engine: TradingEngine) -> None:
        self.engine = engine
        self.error: str | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._main(), name="trading-engine")

    async def _main(self) -> None:
        try:
            await self.engine.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("the engine could not start")
            return
        # A loop that dies is restarted (as `stonks-trading run` does): a dead loop would leave
        # stops unchecked while the API still answers.
        await supervise("engine", self._run_loop, self._stop)

    async def _run_loop(self) -> None:
        try:
            await self.engine.run(self._stop)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"  # the last failure, for /ready and /status
            raise

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._task is not None and not self.engine.started:
            self._task.cancel()  # still waiting for the account lock: nothing in flight to finish
            await asyncio.gather(self._task, return_exceptions=True)
        elif self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                log.warning("engine tick did not finish in time; cancelling it", timeout=timeout)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await self.engine.stop()
