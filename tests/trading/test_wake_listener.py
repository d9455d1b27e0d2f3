"""The instant wake-up outlives its connection (issue 12, defect 4): after the LISTEN
connection dies (its backend terminated, or PostgreSQL restarted), the engine listens again on
a new one, decides what came in meanwhile, and a new recommendation is decided in well under
the polling interval; stopping never raises. On real servers.

The polling interval is an hour in these tests: only the wake-up can explain a decision
within seconds."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.shared.db import connect, create_pool
from services.shared.embedded import EmbeddedPostgres
from services.shared.migrations import upgrade
from services.trading.live import telemetry
from services.trading.live.engine import NOTIFY_CHANNEL, TradingEngine
from services.trading.live.wake_listener import CHECK_TIMEOUT_SECONDS, WakeListener
from tests.trading.engine_harness import (
    FIRST_SESSION,
    RISING,
    add_bar,
    at,
    build_stack,
    close_pool,
    enable_engine,
    recommend,
    seed_ticker,
    sessions,
)

pytestmark = pytest.mark.integration
POLLING_SECONDS = 3600
PROMPT_SECONDS = 5.0  # the re-listen's first pause (0.5 s) and a full tick, with room to spare
LISTENER_PID = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'"


async def _trading_market(pool: asyncpg.Pool):
    """XYZ priced through the next session; the engine enabled, polling once an hour."""
    days = await seed_ticker(pool, "XYZ", RISING)
    await enable_engine(pool, gradual_entry_tranches=1, polling_interval_seconds=POLLING_SECONDS)
    next_day = sessions(days[-1], 2)[1]
    await add_bar(pool, "XYZ", next_day, 115.0, 116.0)
    return days, next_day


async def _until(condition, timeout: float, what: str) -> None:
    """Wait for `condition()` (a bool, or an awaitable of one)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await _value(condition()):
        if loop.time() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def _retrying(work, timeout: float = 30.0):
    """A test's own query, retried while the restarted server's pool replaces dead connections."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await work()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


def _decided(pool: asyncpg.Pool, recommendation_id: int):
    async def check() -> bool:
        return (
            await _retrying(
                lambda: pool.fetchval(
                    "SELECT count(*) FROM trading_decisions WHERE recommendation_id = $1", recommendation_id
                )
            )
            == 1
        )

    return check


async def _value(result):
    return await result if inspect.isawaitable(result) else result


async def _listener_pid(pool: asyncpg.Pool) -> int | None:
    """The backend LISTENing for the engine, as PostgreSQL sees it."""
    return await _retrying(lambda: pool.fetchval(LISTENER_PID))


async def _silently(pool: asyncpg.Pool, insert):
    """Insert with the NOTIFY trigger off: a row no one hears of, as if inserted while the
    wake-up was not listening."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("ALTER TABLE recommendations DISABLE TRIGGER recommendations_notify_engine")
        inserted = await insert(connection)
        await connection.execute("ALTER TABLE recommendations ENABLE TRIGGER recommendations_notify_engine")
    return inserted


def _ticks() -> float:
    return telemetry.REGISTRY.get_sample_value("stonks_engine_ticks_total") or 0.0


async def _run_and_stop_cleanly(engine: TradingEngine, scenario) -> None:
    """Run the loop through `scenario` (once its first full tick is done and it listens), then
    stop it: the loop must end without an error."""
    stop = asyncio.Event()
    ticks = _ticks()
    loop = asyncio.create_task(engine.run(stop))
    try:
        await _until(lambda: _ticks() > ticks, PROMPT_SECONDS, "the first full tick")
        await _until(lambda: _listener_pid(engine.pool), PROMPT_SECONDS, "listening")
        await scenario()
    finally:
        stop.set()
        await asyncio.wait_for(loop, 15)  # raises whatever the loop raised on its way out
        await engine.stop()


async def test_a_terminated_listen_connection_is_replaced(database_url, redis_client, server_urls) -> None:
    pool = await create_pool(database_url, max_size=8)
    try:
        days, next_day = await _trading_market(pool)
        stack = await build_stack(pool, redis_client, at(days[-1], 16, 5))
        stack.clock.set(at(next_day, 9, 45))

        async def scenario() -> None:
            missed = await _silently(pool, lambda connection: recommend(connection, "XYZ", stack.clock.now()))
            await asyncio.sleep(0.5)
            assert not await _decided(pool, missed)()  # nothing but the poll (an hour away) would find it
            first = await _listener_pid(pool)
            admin = await asyncpg.connect(server_urls.database_url)
            try:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
            finally:
                await admin.close()
            # Listening again is followed by a pass that finds what no one was told of.
            await _until(_decided(pool, missed), PROMPT_SECONDS, "the missed recommendation decided")
            assert await _listener_pid(pool) not in (None, first)
            after = await recommend(pool, "NOPE", stack.clock.now())  # unknown ticker: a skip
            await _until(_decided(pool, after), PROMPT_SECONDS, "a new recommendation decided")

        await _run_and_stop_cleanly(stack.engine, scenario)
        assert await pool.fetchval("SELECT count(*) FROM trading_decisions") == 2
    finally:
        await close_pool(pool)


async def test_the_wake_up_outlives_a_postgres_restart(redis_client, tmp_path: Path) -> None:
    """A PostgreSQL of its own, stopped (fast shutdown: every session ended) and started again
    under the running loop."""
    server = EmbeddedPostgres(tmp_path)
    url = await asyncio.to_thread(server.ensure_running)
    pool = None
    try:
        connection = await connect(url)
        try:
            await upgrade(connection)
        finally:
            await connection.close()
        pool = await create_pool(url, max_size=8)
        days, next_day = await _trading_market(pool)
        stack = await build_stack(pool, redis_client, at(days[-1], 16, 5))
        stack.clock.set(at(next_day, 9, 45))

        async def scenario() -> None:
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.ensure_running)
            await _until(lambda: _listener_pid(pool), 15, "listening again after the restart")
            rec = await _retrying(lambda: recommend(pool, "XYZ", stack.clock.now()))
            await _until(_decided(pool, rec), PROMPT_SECONDS, "decided after the restart")
            assert stack.engine.holds_lock  # the catch-up tick took the account lock again

        await _run_and_stop_cleanly(stack.engine, scenario)
    finally:
        if pool is not None:
            await close_pool(pool)
        await asyncio.to_thread(server.stop)


class _FreezingProxy:
    """A TCP relay to PostgreSQL that can stop passing bytes while keeping every socket open:
    a connection that died without a word (a half-open TCP connection, a lost network)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        await asyncio.gather(
            self._pipe(client_reader, server_writer),
            self._pipe(server_reader, client_writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_the_full_tick_check_finds_a_listen_connection_that_died_silently(database_url) -> None:
    """No termination callback comes for a connection whose traffic just stops: the check the
    engine makes at each full tick (`check`) finds it, and it listens again once it can."""
    parts = urlsplit(database_url)
    proxy = _FreezingProxy(parts.hostname, parts.port)
    credentials, at_sign, _ = parts.netloc.rpartition("@")
    proxied = urlunsplit(parts._replace(netloc=f"{credentials}{at_sign}127.0.0.1:{await proxy.start()}"))
    pool = await create_pool(proxied, max_size=4)
    wake = asyncio.Event()
    listener = WakeListener(pool, NOTIFY_CHANNEL, wake, first_delay=0.1, max_delay=0.5)
    try:
        await listener.start()
        assert listener.listening
        proxy.flowing.clear()
        await asyncio.sleep(0.5)
        assert listener.listening  # nothing said it died
        listener.check()
        await _until(lambda: not listener.listening, CHECK_TIMEOUT_SECONDS + 2, "the silent death found")
        assert "stopped answering" in listener.problem
        proxy.flowing.set()
        await _until(lambda: listener.listening, 10, "listening again")
        assert listener.missed_notifications() and not listener.missed_notifications()  # one catch-up pass
        wake.clear()
        await recommend(pool, "XYZ", at(sessions(FIRST_SESSION, 1)[0], 10))
        await asyncio.wait_for(wake.wait(), PROMPT_SECONDS)
    finally:
        await listener.close()
        await close_pool(pool)
        proxy.close()
