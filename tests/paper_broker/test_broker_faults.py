"""The paper broker's loop outlives its failures (issue: it died on its first error): a job
that fails for a defect is retried a few times and then rejected with the reason; a job that
fails because a server is unavailable waits and is filled once; a dead loop is restarted by
the job supervising it. All on the real PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from services.paper_broker.broker import PaperBroker, PaperBrokerSettings
from services.shared.db import create_pool
from services.shared.order_intake import MAX_JOB_ATTEMPTS
from services.shared.orders import OrderJob, client_order_id
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS
from services.shared.schemas import OrderReason, OrderSide
from services.trading.core.clock import SimulatedClock
from services.trading.core.trading_window import session_times
from services.trading.live.main_job import supervise
from tests.trading.engine_harness import ORDER_SIGNER

pytestmark = pytest.mark.integration

SESSION = datetime(2024, 3, 5).date()
OPEN, CLOSE = session_times(SESSION)
MIDDAY = OPEN.replace(hour=OPEN.hour + 2)
# A real PostgreSQL failure on one order: 7 shares trip it; `errcode` picks its kind.
FAILING_FILL = """
CREATE FUNCTION fail_seven() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.quantity = 7 THEN RAISE EXCEPTION 'disk on fire' USING ERRCODE = '{errcode}'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_seven BEFORE INSERT ON broker_fills FOR EACH ROW EXECUTE FUNCTION fail_seven();
"""
HEAL = "DROP TRIGGER fail_seven ON broker_fills; DROP FUNCTION fail_seven();"


@pytest.fixture
async def broker(database_url: str, redis_client: aioredis.Redis):
    pool = await create_pool(database_url)
    await pool.execute("INSERT INTO tickers (ticker, sector) VALUES ('XYZ', 'Technology')")
    await pool.execute("INSERT INTO price_bars VALUES ('XYZ', '1d', $1, 50, 60, 45, 55, 1000)", CLOSE)
    paper = PaperBroker.on_redis(
        pool,
        redis_client,
        SimulatedClock(MIDDAY),
        PaperBrokerSettings(starting_cash=Decimal(1000)),
        order_signer=ORDER_SIGNER,
    )
    await paper.start()
    yield paper
    await pool.close()


def _job(quantity: str) -> str:
    decision = uuid.uuid4()
    return ORDER_SIGNER.sign(
        OrderJob(
            job_id=uuid.uuid4(),
            client_order_id=client_order_id(decision),
            trading_decision_id=decision,
            ticker="XYZ",
            side=OrderSide.BUY,
            quantity=Decimal(quantity),
            reason=OrderReason.ENTRY,
            created_at=MIDDAY,
        )
    )


async def _reports(redis_client: aioredis.Redis, count: int, timeout: float = 15) -> list[dict]:
    """Wait until `count` reports are on the fills queue; return them oldest first."""
    async with asyncio.timeout(timeout):
        while await redis_client.llen(QUEUE_BROKER_FILLS) < count:
            await asyncio.sleep(0.05)
    return [json.loads(m) for m in reversed(await redis_client.lrange(QUEUE_BROKER_FILLS, 0, -1))]


async def _stopped(task: asyncio.Task, stop: asyncio.Event) -> None:
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_job_failing_on_a_defect_is_rejected_with_the_reason_and_the_loop_goes_on(
    broker, redis_client
) -> None:
    await broker.pool.execute(FAILING_FILL.format(errcode="P0001"))
    await broker.orders.push(_job("7"))
    await broker.orders.push(_job("1"))
    stop = asyncio.Event()
    loop = asyncio.create_task(broker.run(stop))
    try:
        bad, good = await _reports(redis_client, 2)
        assert not loop.done()  # it used to die here, with both jobs stuck
    finally:
        await _stopped(loop, stop)
    assert bad["status"] == "rejected" and "disk on fire" in bad["reject_reason"]
    assert bad["reject_reason"].startswith("paper broker error")
    assert good["status"] == "filled" and Decimal(good["quantity"]) == 1
    orders = await broker.pool.fetch("SELECT quantity, status FROM broker_orders ORDER BY quantity")
    assert [(o["quantity"], o["status"]) for o in orders] == [(1, "filled"), (7, "rejected")]
    assert await broker.pool.fetchval("SELECT cash FROM broker_account") == Decimal(1000) - Decimal("50.03")
    assert await redis_client.llen(QUEUE_BROKER_ORDERS + ":processing") == 0
    assert MAX_JOB_ATTEMPTS > 1  # a defect is retried before it is refused


async def test_a_job_failing_on_an_unavailable_server_waits_and_fills_once(broker, redis_client) -> None:
    # 40001 (serialization failure) is what a busy or restarting database says: not the order's fault.
    await broker.pool.execute(FAILING_FILL.format(errcode="40001"))
    await broker.orders.push(_job("7"))
    stop = asyncio.Event()
    loop = asyncio.create_task(broker.run(stop))
    try:
        await asyncio.sleep(2.5)  # several attempts: never rejected, never lost
        assert not loop.done()
        assert await redis_client.llen(QUEUE_BROKER_FILLS) == 0
        assert await broker.orders.depth() == 1
        await broker.pool.execute(HEAL)
        [report] = await _reports(redis_client, 1)
    finally:
        await _stopped(loop, stop)
    assert report["status"] == "filled"
    assert await broker.pool.fetchval("SELECT count(*) FROM broker_fills") == 1
    assert await broker.orders.depth() == 0


async def test_the_supervisor_restarts_a_dead_broker_loop(broker, redis_client) -> None:
    await broker.orders.push(_job("2"))
    stop = asyncio.Event()
    runs = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("the loop died")
        await broker.start()
        await broker.run(stop)

    supervisor = asyncio.create_task(supervise("paper broker", flaky, stop, first_delay=0.05))
    [report] = await _reports(redis_client, 1)
    stop.set()
    assert await asyncio.wait_for(supervisor, 5) == 1
    assert report["status"] == "filled" and len(runs) == 2
