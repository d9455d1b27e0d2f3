"""Nothing lost, nothing doubled: the engine under faults (issue 5), on real servers."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.shared.db import create_pool
from services.shared.embedded import EmbeddedValkey
from services.shared.redis_keys import QUEUE_BROKER_ORDERS
from services.trading.live.engine import ENGINE_LOCK_KEY, TradingEngine
from tests.trading.engine_harness import (
    ORDER_SIGNER,
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


@pytest.fixture
async def pool(database_url: str):
    pool = await create_pool(database_url, max_size=8)
    await enable_engine(pool, gradual_entry_tranches=1)
    yield pool
    await close_pool(pool)


@pytest.fixture
async def make_stack(pool):
    """Builds stacks and always stops their engines, so a failing test cannot leave a
    connection checked out (which would hang the pool's close)."""
    built = []

    async def make(redis_client, start):
        stack = await build_stack(pool, redis_client, start)
        built.append(stack)
        return stack

    yield make
    for stack in built:
        await stack.engine.stop()


async def _market(pool: asyncpg.Pool) -> tuple[list, object]:
    days = await seed_ticker(pool, "XYZ", RISING)
    next_day = sessions(days[-1], 2)[1]
    await add_bar(pool, "XYZ", next_day, 115.0, 116.0)
    return days, next_day


async def test_killed_between_decision_and_delivery_sends_exactly_one_order(
    pool, make_stack, redis_client
) -> None:
    days, next_day = await _market(pool)
    stack = await make_stack(redis_client, at(days[-1], 16, 5))
    rec = await recommend(pool, "XYZ", at(days[-1], 16, 10))
    stack.clock.set(at(next_day, 9, 45))
    # The decision commits (with its order in the outbox), then the process dies before delivery.
    [candidate] = await stack.engine.store.undecided_recommendations(at(days[0], 9), stack.clock.now())
    outcome = await stack.engine.decide_one(candidate, stack.clock.now())
    assert outcome.acted and await redis_client.llen(QUEUE_BROKER_ORDERS) == 0
    await stack.engine.stop()
    restarted = TradingEngine(pool, redis_client, stack.clock, order_signer=ORDER_SIGNER)
    await restarted.start()
    await restarted.tick()
    await restarted.tick()
    assert await redis_client.llen(QUEUE_BROKER_ORDERS) == 1
    await stack.broker.drain()
    assert await pool.fetchval("SELECT count(*) FROM broker_fills") == 1
    assert (
        await pool.fetchval("SELECT count(*) FROM trading_decisions WHERE recommendation_id = $1", rec) == 1
    )
    await restarted.stop()


async def test_a_job_delivered_twice_fills_once(pool, make_stack, redis_client) -> None:
    days, next_day = await _market(pool)
    stack = await make_stack(redis_client, at(days[-1], 16, 5))
    await recommend(pool, "XYZ", at(days[-1], 16, 10))
    stack.clock.set(at(next_day, 9, 45))
    await stack.engine.tick()
    # Delivered, then the process died before marking it delivered: it goes out again.
    await pool.execute("UPDATE order_outbox SET delivered_at = NULL")
    await stack.engine.tick()
    assert await redis_client.llen(QUEUE_BROKER_ORDERS) == 2
    await stack.broker.drain()
    await stack.engine.tick()
    assert await pool.fetchval("SELECT count(*) FROM broker_fills") == 1
    assert await pool.fetchval("SELECT count(*) FROM applied_fills") == 1
    assert await pool.fetchval("SELECT sum(remaining_quantity) FROM tax_lots") == await pool.fetchval(
        "SELECT quantity FROM broker_fills"
    )


async def test_the_broker_rejecting_an_order_is_recorded_and_the_loop_goes_on(
    pool, make_stack, redis_client
) -> None:
    days, next_day = await _market(pool)
    stack = await make_stack(redis_client, at(days[-1], 16, 5))
    await recommend(pool, "XYZ", at(days[-1], 16, 10))
    stack.clock.set(at(next_day, 9, 45))
    await stack.engine.tick()
    await pool.execute("UPDATE broker_account SET cash = 1")  # the account cannot pay any more
    await stack.broker.drain()
    report = await stack.engine.tick()
    assert report.faults == []
    order = await pool.fetchrow("SELECT * FROM order_outbox")
    assert order["broker_status"] == "rejected" and "insufficient cash" in order["broker_reason"]
    assert await pool.fetchval("SELECT count(*) FROM tax_lots") == 0


MALFORMED = [
    ("XYZ", "buy", math.nan, "confidence nan"),
    ("XYZ", "buy", 1.5, "confidence 1.5"),
    ("XYZ", "buy", -0.2, "confidence -0.2"),
    ("NOPE", "buy", 0.9, "unknown"),
    ("BARE", "buy", 0.9, "no market price"),
    ("XYZ", "short", 0.9, "neither buy nor sell"),
]


async def test_malformed_recommendations_become_skips_and_the_loop_goes_on(
    pool, make_stack, redis_client
) -> None:
    days, next_day = await _market(pool)
    await pool.execute("INSERT INTO tickers (ticker, sector) VALUES ('BARE', 'Energy')")
    stack = await make_stack(redis_client, at(days[-1], 16, 5))
    for ticker, action, confidence, _ in MALFORMED:
        await recommend(pool, ticker, at(days[-1], 16, 10), action=action, confidence=confidence)
    good = await recommend(pool, "XYZ", at(days[-1], 16, 11), confidence=0.9)
    stack.clock.set(at(next_day, 9, 45))
    report = await stack.engine.tick()
    assert report.faults == [] and report.decisions == len(MALFORMED) + 1
    skips = await pool.fetch(
        "SELECT r.ticker, r.action, d.skip_reason FROM trading_decisions d "
        "JOIN recommendations r ON r.id = d.recommendation_id WHERE d.decision = 'skip'"
    )
    assert len(skips) == len(MALFORMED)
    reasons = " | ".join(s["skip_reason"] for s in skips)
    for *_, expected in MALFORMED:
        assert expected in reasons
    assert (
        await pool.fetchval("SELECT decision FROM trading_decisions WHERE recommendation_id = $1", good)
        == "act"
    )


async def test_postgres_connections_dropped_mid_loop(pool, make_stack, redis_client, server_urls) -> None:
    days, next_day = await _market(pool)
    stack = await make_stack(redis_client, at(days[-1], 16, 5))
    await recommend(pool, "XYZ", at(days[-1], 16, 10))
    stack.clock.set(at(next_day, 9, 45))
    database = await pool.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(server_urls.database_url)
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
        "AND pid <> pg_backend_pid()",
        database,
    )
    await admin.close()
    for _ in range(3):  # connections die under it: at worst faults, never a crash
        await stack.engine.tick()
    await stack.broker.drain()
    await stack.engine.tick()
    assert await pool.fetchval("SELECT count(*) FROM broker_fills") == 1
    # The lock died with its connection; the engine took it again on a new one.
    assert stack.engine.holds_lock
    assert await pool.fetchval("SELECT pg_try_advisory_lock($1)", ENGINE_LOCK_KEY) is False


async def test_redis_restarted_mid_loop(pool, make_stack, tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path)
    url = valkey.ensure_running()
    client = aioredis.from_url(url)
    try:
        days, next_day = await _market(pool)
        stack = await make_stack(client, at(days[-1], 16, 5))
        await recommend(pool, "XYZ", at(days[-1], 16, 10))
        valkey.stop()
        stack.clock.set(at(next_day, 9, 45))
        down = await stack.engine.tick()
        assert any("outbox" in f for f in down.faults)  # decided, but not deliverable yet
        assert await pool.fetchval("SELECT count(*) FROM trading_decisions") == 1
        assert await pool.fetchval("SELECT count(*) FROM engine_faults WHERE component = 'outbox'") >= 1
        valkey.ensure_running()
        stack.clock.set(at(next_day, 9, 50))
        await stack.engine.tick()
        await stack.broker.drain()
        await stack.engine.tick()
        assert await pool.fetchval("SELECT count(*) FROM broker_fills") == 1
    finally:
        await client.aclose()
        valkey.stop()


async def test_a_second_engine_waits_for_the_first(pool, make_stack, redis_client) -> None:
    days, _ = await _market(pool)
    stack = await make_stack(redis_client, at(days[-1], 16, 5))
    second = TradingEngine(pool, redis_client, stack.clock, order_signer=ORDER_SIGNER)
    with pytest.raises(asyncio.TimeoutError):
        await second.start(lock_timeout=0.5)
    assert not second.holds_lock and stack.engine.holds_lock  # waiting never counts as holding
    await second.stop()
    await stack.engine.stop()
    await second.start(lock_timeout=5)
    assert second.started
    await second.stop()


async def test_the_pool_lends_no_session_state_after_the_engine_stops(pool, make_stack, redis_client) -> None:
    """Pooled connections go back without asyncpg's reset query (services/shared/db.py): the
    engine's lock and LISTEN connections must come back to the pool clean."""
    days, _ = await _market(pool)
    stack = await make_stack(redis_client, at(days[-1], 16, 5))
    stop = asyncio.Event()
    loop = asyncio.create_task(stack.engine.run(stop))
    await asyncio.sleep(0.3)
    listening = await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'")
    stop.set()
    await loop
    await stack.engine.stop()
    connections = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        for connection in connections:
            assert await connection.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
            assert (
                await connection.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                )
                == 0
            )
    finally:
        for connection in connections:
            await pool.release(connection)
    assert listening >= 1  # the loop did LISTEN on a pooled connection


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(confidences=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4), again=st.integers(1, 3))
def test_a_recommendation_is_decided_once(database_url, redis_url, confidences, again) -> None:
    """Property 27 (task 13.2): processing recommendations again (the same tick repeated, a
    restart, a lost Redis mark) adds no decision and sends no order."""

    async def scenario() -> None:
        pool = await create_pool(database_url, max_size=6)
        client = aioredis.from_url(redis_url)
        stack = None
        try:
            await pool.execute(
                "TRUNCATE recommendations, trading_decisions, order_outbox, price_bars, tickers CASCADE"
            )
            await client.flushdb()
            await enable_engine(pool, gradual_entry_tranches=1)
            days, next_day = await _market(pool)
            for confidence in confidences:
                await recommend(pool, "XYZ", at(days[-1], 16, 10), confidence=confidence)
            stack = await build_stack(pool, client, at(next_day, 9, 45))
            await pool.execute("UPDATE engine_state SET epoch = $1", at(days[-1], 16))
            await stack.engine.tick()
            decided = await pool.fetchval("SELECT count(*) FROM trading_decisions")
            jobs = await pool.fetchval("SELECT count(*) FROM order_outbox")
            queued = await client.llen(QUEUE_BROKER_ORDERS)
            assert decided == len(confidences)
            for _ in range(again):
                await stack.engine.tick()
                await client.flushdb()  # Redis forgets every mark: the database still says "decided"
                await stack.restart_engine()
                await stack.engine.tick()
            assert await pool.fetchval("SELECT count(*) FROM trading_decisions") == decided
            assert await pool.fetchval("SELECT count(*) FROM order_outbox") == jobs
            assert (
                await pool.fetchval("SELECT count(*) FROM order_outbox WHERE delivered_at IS NOT NULL")
                == queued
            )
        finally:
            if stack is not None:
                await stack.engine.stop()
            await client.aclose()
            await close_pool(pool)

    asyncio.run(scenario())
