"""One soak: private servers, the sample market, the engine process on a shifted clock, a
steady upstream writer, moving prices and the planned faults for `seconds`; then the stack
settles, the engine is stopped as `run` is (SIGTERM), and the invariants are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import redis.asyncio as aioredis

from services.paper_broker.broker import PaperBrokerSettings
from services.shared.db import connect, create_pool
from services.shared.ports import free_port
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS, processing_queue
from services.trading.soak import invariants, market, upstream
from services.trading.soak.engine_process import ShiftedClock
from services.trading.soak.report import MemorySample, SoakReport
from services.trading.soak.stack import (
    ALL_FAULTS,
    EVENT_FAULTS,
    KILL_ENGINE,
    MALFORMED,
    STOP_TIMEOUT_SECONDS,
    EngineExit,
    EngineProcess,
    FaultEvent,
    SoakStack,
)

SOAK_DATABASE = "stonks_soak"
READY_TIMEOUT_SECONDS = 90.0
WRITE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SoakPlan:
    seconds: float
    rate: float = 3.0
    faults: tuple[str, ...] = ()
    fault_every_seconds: float = 20.0
    seed: int = 12
    polling_interval_seconds: float = 30.0
    memory_every_seconds: float = 10.0
    price_every_seconds: float = 5.0
    malformed_share: float = 0.1
    capital: Decimal = Decimal(10_000)
    session: date = market.SOAK_SESSION
    api: bool = True
    tracemalloc: bool = False
    keep_data: bool = False  # keep the servers' data (to query it afterwards), not only the report

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(ALL_FAULTS))
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(ALL_FAULTS)}")
        if self.seconds <= 0 or self.rate <= 0:
            raise ValueError("a soak needs a positive duration and rate")
        room = market.soak_room(self.session).total_seconds() - self.polling_interval_seconds * 4
        if self.seconds > room:
            raise ValueError(
                f"{self.seconds / 60:.0f} minutes do not fit in the trading window of "
                f"{self.session} ({room / 60:.0f} minutes at most)"
            )

    @property
    def event_faults(self) -> tuple[str, ...]:
        return tuple(f for f in self.faults if f in EVENT_FAULTS)

    @property
    def quiet_seconds(self) -> float:
        """No fault starts this close to the end: the last fault must be over before settling."""
        return min(15.0, self.seconds * 0.15)


@dataclass(frozen=True, slots=True)
class SoakProgress:
    phase: str
    elapsed: float
    total: float
    tries: int
    faults: int
    rss_mb: float | None


Progress = Callable[[SoakProgress], None]


@dataclass
class _Tally:
    """What the soak's own tasks did, as they do it."""

    tries: Counter = field(default_factory=Counter)
    write_failures: int = 0
    faults: list[FaultEvent] = field(default_factory=list)
    exits: list[EngineExit] = field(default_factory=list)
    memory: list[MemorySample] = field(default_factory=list)
    phase: str = "starting"


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


async def _fresh_database(server_url: str) -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {SOAK_DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {SOAK_DATABASE}")
    finally:
        await admin.close()
    return _with_path(server_url, f"/{SOAK_DATABASE}")


def _engine_environment(plan: SoakPlan, database_url: str, redis_url: str, directory: Path) -> dict[str, str]:
    """The owner's environment without any STONKS_ setting (the soak must not trade their
    account or read their settings), plus the soak's own."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STONKS_")}
    environment.update(
        {
            "STONKS_DATABASE_URL": database_url,
            "STONKS_REDIS_URL": redis_url,
            "STONKS_DATA_DIR": str(directory / "data"),
            "STONKS_API_TOKEN": secrets.token_urlsafe(24),
            "STONKS_LOG_LEVEL": "INFO",
            "STONKS_TRADING_ENABLED": "true",
            "STONKS_TRADING_POLLING_INTERVAL_SECONDS": str(plan.polling_interval_seconds),
        }
    )
    return environment


def _engine_arguments(plan: SoakPlan, offset: timedelta, directory: Path) -> list[str]:
    arguments = [
        "--clock-offset-seconds",
        str(offset.total_seconds()),
        "--capital",
        str(plan.capital),
        "--api-port",
        str(free_port() if plan.api else 0),
    ]
    if plan.tracemalloc:
        arguments += [
            "--tracemalloc-dir",
            str(directory / "tracemalloc"),
            "--tracemalloc-warmup-seconds",
            str(min(120.0, plan.seconds / 4)),
            "--tracemalloc-every-seconds",
            str(max(60.0, plan.seconds / 8)),
        ]
    return arguments


async def run_soak(plan: SoakPlan, directory: Path, progress: Progress | None = None) -> SoakReport:
    """Run the plan in `directory` (servers, logs and the report go there); the servers are
    stopped at the end whatever happens."""
    directory.mkdir(parents=True, exist_ok=True)
    stack = SoakStack(directory)
    urls = await stack.start_servers()
    try:
        database_url = await _fresh_database(urls.database_url)
        connection = await connect(database_url)
        try:
            await market.load_market(connection, plan.session, malformed=MALFORMED in plan.faults)
        finally:
            await connection.close()
        client = aioredis.from_url(urls.redis_url)
        await client.flushdb()
        await client.aclose()
        report = await _soak(plan, stack, database_url, urls.redis_url, directory, progress)
    finally:
        await stack.stop_servers()
        if not plan.keep_data:
            shutil.rmtree(stack.servers.root, ignore_errors=True)
    report.save(directory)
    return report


async def _soak(
    plan: SoakPlan,
    stack: SoakStack,
    database_url: str,
    redis_url: str,
    directory: Path,
    progress: Progress | None,
) -> SoakReport:
    clock = ShiftedClock(market.soak_start(plan.session) - datetime.now(UTC))
    engine = EngineProcess(
        _engine_arguments(plan, clock.offset, directory),
        _engine_environment(plan, database_url, redis_url, directory),
        directory / "engine.log",
        # the tracer writes its last report as the process stops
        stop_timeout=STOP_TIMEOUT_SECONDS * (4 if plan.tracemalloc else 1),
    )
    # No connection floor: the pool would otherwise log each failed reconnection while the
    # database is down under a fault.
    pool = await create_pool(database_url, min_size=0, max_size=4)
    tally = _Tally()
    stopping = asyncio.Event()
    background: list[asyncio.Task] = []
    try:
        await engine.start()
        await _wait_ready(pool, engine)
        stack.mark_start()
        load_started = clock.now()
        tally.phase = "load"
        writer = upstream.Upstream(
            random.Random(plan.seed),
            market.traded_tickers(MALFORMED in plan.faults),
            plan.malformed_share if MALFORMED in plan.faults else 0.0,
        )
        walk = market.PriceWalk(
            await market.day_ranges(pool, plan.session, market.traded_tickers(MALFORMED in plan.faults)),
            random.Random(plan.seed + 1),
        )
        background = [
            asyncio.create_task(_write_upstream(pool, writer, plan.rate, clock, tally, stopping)),
            asyncio.create_task(_move_prices(pool, walk, plan.price_every_seconds, clock, stopping)),
            asyncio.create_task(_sample_memory(engine, stack, plan.memory_every_seconds, tally)),
            asyncio.create_task(_watch_engine(engine, stack, tally)),
        ]
        if progress is not None:
            background.append(asyncio.create_task(_report_progress(plan, stack, engine, tally, progress)))
        faults = asyncio.create_task(
            _inject_faults(plan, stack, engine, random.Random(plan.seed + 2), tally, stopping)
        )
        await asyncio.sleep(plan.seconds)
        stopping.set()
        await faults  # the fault in progress ends (its server back) before the stack settles
        await stack.start_servers()
        tally.phase = "settling"
        settled = await _settle(pool, redis_url, plan, clock)
        rest = clock.now()
        tally.phase = "stopping"
        async with engine.lock:  # the watchdog must not take the stop for a crash
            _sample_once(engine, stack, tally)
            stopped_cleanly = await engine.terminate()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        tally.phase = "checking"
        results = await _check(database_url, redis_url, plan, rest)
        facts = await _facts(pool, load_started, tally.faults)
    finally:
        stopping.set()
        for task in background:
            task.cancel()
        await engine.kill()
        await pool.close()
    return SoakReport(
        plan={**asdict(plan), "faults": list(plan.faults)},
        duration_seconds=plan.seconds,
        tries=dict(tally.tries),
        write_failures=tally.write_failures,
        decisions=facts["decisions"],
        broker_orders=facts["orders"],
        closed_trades=facts["trades"],
        realized_pnl=str(facts["pnl"]),
        faults=tuple(tally.faults),
        engine_starts=engine.starts,
        engine_exits=tuple(tally.exits),
        stopped_cleanly=stopped_cleanly,
        invariants=tuple(results),
        memory=tuple(tally.memory),
        engine_faults=facts["engine_faults"],
        directory=str(directory),
        notes=(*facts["latency"], f"settling: {settled}", f"engine log: {directory / 'engine.log'}"),
    )


async def _wait_ready(pool: asyncpg.Pool, engine: EngineProcess) -> None:
    """Until the engine has started (its bookkeeping row exists: the epoch from which it
    decides) and the paper broker opened the account."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_SECONDS
    while loop.time() < deadline:
        if engine.exited() is not None:
            raise RuntimeError(
                f"the engine process exited at start (code {engine.exited()}); see its log {engine.log_path}"
            )
        ready = await pool.fetchval("""SELECT EXISTS (SELECT 1 FROM engine_state)
                                          AND EXISTS (SELECT 1 FROM broker_account)""")
        if ready:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(
        f"the engine did not start within {READY_TIMEOUT_SECONDS:.0f} s; see {engine.log_path}"
    )


async def _write_upstream(
    pool: asyncpg.Pool,
    writer: upstream.Upstream,
    rate: float,
    clock: ShiftedClock,
    tally: _Tally,
    stopping: asyncio.Event,
) -> None:
    """One row every 1/rate seconds; while PostgreSQL is down the writes fail (counted) and
    the schedule moves on rather than bursting to catch up."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not stopping.is_set():
        row = writer.next_row()
        try:
            await asyncio.wait_for(upstream.write(pool, row, clock.now()), WRITE_TIMEOUT_SECONDS)
            tally.tries[row.kind] += 1
        except Exception:  # noqa: BLE001 - a server down under the writer is one of the soak's faults
            tally.write_failures += 1
        due += 1 / rate
        if due < loop.time() - 1:
            due = loop.time()
        await asyncio.sleep(max(due - loop.time(), 0))


async def _move_prices(
    pool: asyncpg.Pool, walk: market.PriceWalk, every: float, clock: ShiftedClock, stopping: asyncio.Event
) -> None:
    while not stopping.is_set():
        with contextlib.suppress(Exception):  # a missed price is a price that did not change
            await asyncio.wait_for(
                market.publish_prices(pool, walk.step(), clock.now()), WRITE_TIMEOUT_SECONDS
            )
        await asyncio.sleep(every)


def _sample_once(engine: EngineProcess, stack: SoakStack, tally: _Tally) -> None:
    pid = engine.pid
    if pid is None:
        return
    with contextlib.suppress(psutil.Error):  # it died between the two calls
        tally.memory.append(MemorySample(stack.elapsed(), pid, psutil.Process(pid).memory_info().rss))


async def _sample_memory(engine: EngineProcess, stack: SoakStack, every: float, tally: _Tally) -> None:
    while True:
        _sample_once(engine, stack, tally)
        await asyncio.sleep(every)


async def _watch_engine(engine: EngineProcess, stack: SoakStack, tally: _Tally) -> None:
    """A service manager's part: an engine process that ended by itself is recorded and
    started again."""
    while True:
        await asyncio.sleep(0.5)
        async with engine.lock:
            code = engine.exited()
            if code is None:
                continue
            tally.exits.append(EngineExit(stack.elapsed(), engine.process.pid, code))
            await asyncio.sleep(1)
            await engine.start()


async def _inject_faults(
    plan: SoakPlan,
    stack: SoakStack,
    engine: EngineProcess,
    rng: random.Random,
    tally: _Tally,
    stopping: asyncio.Event,
) -> None:
    """Faults at random moments (exponential gaps around `fault_every_seconds`), the kinds in
    a shuffled round so that even a short soak meets each one."""
    kinds = list(plan.event_faults)
    order: list[str] = []
    while kinds:
        gap = min(
            max(rng.expovariate(1 / plan.fault_every_seconds), plan.fault_every_seconds * 0.3),
            plan.fault_every_seconds * 2,
        )
        if stack.elapsed() + gap > plan.seconds - plan.quiet_seconds:
            return
        try:
            await asyncio.wait_for(stopping.wait(), gap)
            return
        except TimeoutError:
            pass
        if not order:
            order = kinds[:]
            rng.shuffle(order)
        kind = order.pop()
        down = rng.uniform(0.2, 2.0) if kind == KILL_ENGINE else rng.uniform(1.0, 4.0)
        tally.faults.append(await stack.inject(kind, engine, down))


async def _report_progress(
    plan: SoakPlan, stack: SoakStack, engine: EngineProcess, tally: _Tally, progress: Progress
) -> None:
    while True:
        rss = tally.memory[-1].rss_bytes / (1024 * 1024) if tally.memory else None
        progress(
            SoakProgress(
                tally.phase, stack.elapsed(), plan.seconds, sum(tally.tries.values()), len(tally.faults), rss
            )
        )
        await asyncio.sleep(1)


_IN_FLIGHT = """
SELECT (SELECT count(*) FROM recommendations r WHERE r.action <> 'hold' AND r.mode <> 'research'
          AND NOT EXISTS (SELECT 1 FROM trading_decisions d WHERE d.recommendation_id = r.id)) AS undecided,
       (SELECT count(*) FROM broker_orders b WHERE NOT EXISTS
          (SELECT 1 FROM applied_fills a WHERE a.client_order_id = b.client_order_id)) AS unapplied,
       (SELECT count(*) FROM order_outbox WHERE delivered_at IS NULL AND cancelled_at IS NULL
          AND not_before <= $1) AS unsent,
       (SELECT count(*) FROM trading_decisions) AS decisions,
       (SELECT count(*) FROM applied_fills) AS applied
"""


async def _settle(pool: asyncpg.Pool, redis_url: str, plan: SoakPlan, clock: ShiftedClock) -> str:
    """Wait until nothing is in flight (every recommendation decided, every job sent, every
    outcome applied, the queues empty), or until nothing has moved for longer than a polling
    interval (something is stuck: the invariants will say what), or a time limit."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    limit, still_for = plan.polling_interval_seconds * 3 + 60, plan.polling_interval_seconds + 5
    client = aioredis.from_url(redis_url)
    last, changed_at = None, loop.time()
    try:
        while loop.time() - started < limit:
            try:
                row = await pool.fetchrow(_IN_FLIGHT, clock.now())
                queued = 0
                for queue in (QUEUE_BROKER_ORDERS, QUEUE_BROKER_FILLS):
                    queued += await client.llen(queue) + await client.llen(processing_queue(queue))
            except Exception:  # noqa: BLE001 - a server still recovering: look again
                await asyncio.sleep(1)
                continue
            state = (*row.values(), queued)
            if row["undecided"] == row["unapplied"] == row["unsent"] == queued == 0:
                return f"nothing in flight after {loop.time() - started:.0f} s"
            if state != last:
                last, changed_at = state, loop.time()
            elif loop.time() - changed_at >= still_for:
                return (
                    f"stalled after {loop.time() - started:.0f} s with {row['undecided']} undecided, "
                    f"{row['unsent']} unsent, {row['unapplied']} unapplied, {queued} queued"
                )
            await asyncio.sleep(1)
        return f"gave up after {limit:.0f} s"
    finally:
        await client.aclose()


async def _check(database_url: str, redis_url: str, plan: SoakPlan, rest: datetime) -> list:
    connection = await asyncpg.connect(database_url)
    client = aioredis.from_url(redis_url)
    try:
        at_rest = invariants.AtRest(plan.capital, PaperBrokerSettings().slippage_bps, client, rest)
        return await invariants.check_all(connection, at_rest)
    finally:
        await client.aclose()
        await connection.close()


_LATENCY = """
SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS worst
FROM (SELECT extract(epoch FROM d.created_at - r.generated_at) * 1000 AS ms
      FROM trading_decisions d JOIN recommendations r ON r.id = d.recommendation_id
      WHERE r.generated_at >= $1) AS latency
"""


async def _latency(pool: asyncpg.Pool, label: str, since: datetime) -> str:
    row = await pool.fetchrow(_LATENCY, since)
    if not row["n"]:
        return f"decision latency {label}: no decisions"
    return (
        f"decision latency {label} (recommendation written -> decided, {row['n']} decisions): "
        f"p50 {row['p50']:.0f} ms, p99 {row['p99']:.0f} ms, max {row['worst']:.0f} ms"
    )


async def _facts(pool: asyncpg.Pool, load_started: datetime, injected: list[FaultEvent]) -> dict:
    decisions = {
        r["kind"]: r["n"]
        for r in await pool.fetch(
            """SELECT CASE WHEN recommendation_id IS NULL THEN 'exit ' || decision
                       WHEN decision = 'skip' THEN 'skip: ' || category ELSE decision END AS kind,
                  count(*) AS n FROM trading_decisions GROUP BY 1"""
        )
    }
    orders = {
        r["status"]: r["n"]
        for r in await pool.fetch("SELECT status, count(*) AS n FROM broker_orders GROUP BY 1")
    }
    trades = await pool.fetchrow("SELECT count(*) AS n, coalesce(sum(pnl), 0) AS pnl FROM closed_trades")
    faults = tuple(
        (r["component"], r["error"], r["n"])
        for r in await pool.fetch(
            """SELECT component, left(regexp_replace(error, '[0-9a-f-]{36}|[0-9]+', '#', 'g'), 140) AS error,
                  count(*) AS n FROM engine_faults GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 12"""
        )
    )
    latency = [await _latency(pool, "over the run", load_started)]
    restarts = [f for f in injected if f.kind.startswith("postgres")]
    if restarts:  # the instant wake-up must come back with the database (issue 12, defect 4)
        back = restarts[-1].back_at_seconds
        latency.append(
            await _latency(
                pool,
                f"after the last PostgreSQL fault (from {back:.0f} s)",
                load_started + timedelta(seconds=back),
            )
        )
    return {
        "decisions": decisions,
        "orders": orders,
        "trades": trades["n"],
        "latency": latency,
        "pnl": trades["pnl"].quantize(Decimal("0.01")),
        "engine_faults": faults,
    }
