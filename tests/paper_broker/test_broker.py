"""The paper broker fills once per client_order_id, at the market plus slippage, rejects what
the account cannot do, loses no job when it dies mid-job, and fills only jobs the engine signed."""

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
from services.shared.order_signing import OrderSigner, UnsignedOrderJob
from services.shared.orders import OrderJob, client_order_id
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS
from services.shared.schemas import OrderReason, OrderSide
from services.trading.core.clock import SimulatedClock
from services.trading.core.trading_window import session_times
from tests.trading.engine_harness import ORDER_SIGNER

pytestmark = pytest.mark.integration

SESSION = datetime(2024, 3, 5).date()
OPEN, CLOSE = session_times(SESSION)
MIDDAY = OPEN.replace(hour=OPEN.hour + 2)


@pytest.fixture
async def broker(database_url: str, redis_client: aioredis.Redis):
    pool = await create_pool(database_url)
    await pool.execute("INSERT INTO tickers (ticker, sector) VALUES ('XYZ', 'Technology')")
    await pool.execute(
        """INSERT INTO price_bars VALUES ('XYZ', '1d', $1, 100, 110, 95, 105, 1000),
                                         ('XYZ', '1d', $2, 50, 60, 45, 55, 1000)""",
        session_times(datetime(2024, 3, 4).date())[1],
        CLOSE,
    )
    clock = SimulatedClock(MIDDAY)
    paper = PaperBroker.on_redis(
        pool, redis_client, clock, PaperBrokerSettings(starting_cash=Decimal(1000)), order_signer=ORDER_SIGNER
    )
    await paper.start()
    yield paper
    await pool.close()


def _order(side: OrderSide, quantity: str, decision: uuid.UUID | None = None) -> OrderJob:
    decision = decision or uuid.uuid4()
    return OrderJob(
        job_id=uuid.uuid4(),
        client_order_id=client_order_id(decision),
        trading_decision_id=decision,
        ticker="XYZ",
        side=side,
        quantity=Decimal(quantity),
        reason=OrderReason.ENTRY,
        created_at=MIDDAY,
    )


def _job(side: OrderSide, quantity: str, decision: uuid.UUID | None = None) -> str:
    """A job as the engine's outbox sends it: signed."""
    return ORDER_SIGNER.sign(_order(side, quantity, decision))


async def _reports(redis_client: aioredis.Redis) -> list[dict]:
    return [json.loads(m) for m in reversed(await redis_client.lrange(QUEUE_BROKER_FILLS, 0, -1))]


async def test_buy_fills_at_the_sessions_open_plus_slippage(broker: PaperBroker, redis_client) -> None:
    report = await broker.handle(_job(OrderSide.BUY, "3"))
    assert report.status == "filled"
    # Mid-session, the latest price from daily bars is the session's open (50), not its close.
    assert report.price == Decimal("50.025")
    cash = await broker.pool.fetchval("SELECT cash FROM broker_account")
    assert cash == Decimal(1000) - Decimal("150.08")
    assert [r["status"] for r in await _reports(redis_client)] == ["filled"]


async def test_the_same_job_twice_fills_once(broker: PaperBroker, redis_client) -> None:
    message = _job(OrderSide.BUY, "2")
    first = await broker.handle(message)
    second = await broker.handle(message)
    assert await broker.pool.fetchval("SELECT count(*) FROM broker_fills") == 1
    assert (second.status, second.price, second.fill_id) == (first.status, first.price, first.fill_id)


async def test_rejections_say_why(broker: PaperBroker) -> None:
    too_big = await broker.handle(_job(OrderSide.BUY, "100"))
    assert too_big.status == "rejected" and "insufficient cash" in too_big.reject_reason
    naked_sell = await broker.handle(_job(OrderSide.SELL, "1"))
    assert naked_sell.status == "rejected" and "holds 0" in naked_sell.reject_reason
    assert await broker.pool.fetchval("SELECT cash FROM broker_account") == Decimal(1000)
    statuses = await broker.pool.fetch("SELECT status, reject_reason FROM broker_orders")
    assert all(r["status"] == "rejected" and r["reject_reason"] for r in statuses)


async def test_malformed_jobs_are_parked_not_fatal(broker: PaperBroker, redis_client) -> None:
    await broker.orders.push('{"ticker": "XYZ"}')
    await broker.orders.push(_job(OrderSide.BUY, "1"))
    assert await broker.drain() == 2
    assert await redis_client.llen(QUEUE_BROKER_ORDERS + ":dead") == 1
    assert await broker.pool.fetchval("SELECT count(*) FROM broker_fills") == 1


async def test_a_job_taken_by_a_broker_that_died_is_filled_after_restart(
    broker: PaperBroker, redis_client
) -> None:
    await broker.orders.push(_job(OrderSide.BUY, "1"))
    taken = await broker.orders.take()  # the broker dies here, before handling it
    assert taken is not None and await redis_client.llen(QUEUE_BROKER_ORDERS) == 0
    restarted = PaperBroker(
        broker.pool, broker.orders, broker.fills, broker.clock, broker.settings, order_signer=ORDER_SIGNER
    )
    await restarted.start()
    assert await restarted.drain() == 1
    assert await broker.pool.fetchval("SELECT count(*) FROM broker_fills") == 1
    assert await redis_client.llen(QUEUE_BROKER_ORDERS + ":processing") == 0


async def test_sell_after_buy_returns_cash(broker: PaperBroker) -> None:
    await broker.handle(_job(OrderSide.BUY, "4"))
    broker.clock.set(CLOSE)
    sold = await broker.handle(_job(OrderSide.SELL, "4"))
    assert sold.status == "filled" and sold.price == Decimal("54.9725")  # close 55 less 5 bps
    assert await broker.pool.fetchval("SELECT cash FROM broker_account") == Decimal(1000) - Decimal(
        "200.10"
    ) + Decimal("219.89")


# -- only jobs the engine signed (issue 12: a job pushed by hand was filled) --------------------


async def _refusals(broker: PaperBroker) -> list[str]:
    return [
        r["error"]
        for r in await broker.pool.fetch(
            "SELECT error FROM engine_faults WHERE component = 'paper_broker' ORDER BY id"
        )
    ]


async def _nothing_done_for(broker: PaperBroker, redis_client: aioredis.Redis) -> bool:
    """No order, no fill, no cash moved, no report: the job had no effect at all."""
    return (
        await broker.pool.fetchval("SELECT count(*) FROM broker_orders") == 0
        and await broker.pool.fetchval("SELECT count(*) FROM broker_fills") == 0
        and await broker.pool.fetchval("SELECT cash FROM broker_account") == Decimal(1000)
        and await redis_client.llen(QUEUE_BROKER_FILLS) == 0
    )


async def test_a_job_pushed_by_hand_is_refused_never_filled(broker: PaperBroker, redis_client) -> None:
    await broker.orders.push(_order(OrderSide.BUY, "3").model_dump_json())  # a well-formed job, unsigned
    assert await broker.drain() == 1
    assert await _nothing_done_for(broker, redis_client)
    assert ["carries no signature" in error for error in await _refusals(broker)] == [True]
    assert await redis_client.llen(QUEUE_BROKER_ORDERS + ":dead") == 1  # kept for the owner to look at
    assert await redis_client.llen(QUEUE_BROKER_ORDERS + ":processing") == 0


async def test_a_job_changed_after_signing_is_refused_never_filled(broker: PaperBroker, redis_client) -> None:
    tampered = json.loads(_job(OrderSide.BUY, "1"))
    tampered["quantity"] = "9"
    await broker.orders.push(json.dumps(tampered))
    forged = json.loads(_job(OrderSide.BUY, "1"))
    forged["signature"] = "0" * 64
    await broker.orders.push(json.dumps(forged))
    assert await broker.drain() == 2
    assert await _nothing_done_for(broker, redis_client)
    assert ["does not match" in error for error in await _refusals(broker)] == [True, True]


async def test_a_signed_job_still_fills_beside_refused_ones(broker: PaperBroker, redis_client) -> None:
    await broker.orders.push("not even JSON")
    await broker.orders.push(_job(OrderSide.BUY, "2"))
    stop = asyncio.Event()
    loop = asyncio.create_task(broker.run(stop))
    try:
        async with asyncio.timeout(15):
            while await redis_client.llen(QUEUE_BROKER_FILLS) < 1 or len(await _refusals(broker)) < 1:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    assert [(r["status"], r["quantity"]) for r in await _reports(redis_client)] == [("filled", "2")]
    assert await broker.pool.fetchval("SELECT count(*) FROM broker_fills") == 1


def test_a_signature_covers_every_field_and_needs_the_key() -> None:
    job = _order(OrderSide.SELL, "5")
    signed = ORDER_SIGNER.sign(job)
    assert OrderJob.model_validate(ORDER_SIGNER.verified(signed)) == job
    other_key = OrderSigner.generate()
    with pytest.raises(UnsignedOrderJob):
        other_key.verified(signed)
    for name, value in [("side", "buy"), ("ticker", "ABC"), ("mode", "live"), ("client_order_id", "x-0")]:
        changed = {**json.loads(signed), name: value}
        with pytest.raises(UnsignedOrderJob, match="does not match"):
            ORDER_SIGNER.verified(json.dumps(changed))
