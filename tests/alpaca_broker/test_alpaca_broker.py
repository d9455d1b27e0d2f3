"""The Alpaca broker, on the real alpaca-py SDK, against the local Alpaca server: the same jobs
and reports as the paper broker, one order per client order id, outcomes from the stream (and
from a catch-up when the stream missed them), refusals reported, storms waited out."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from services.shared.redis_keys import QUEUE_BROKER_ORDERS, processing_queue
from services.shared.schemas import OrderSide
from tests.alpaca_broker.harness import Running, job_of, successor, until

pytestmark = pytest.mark.integration


async def test_a_buy_filled_in_two_parts_is_reported_once_at_its_average_price(make) -> None:
    running = make()
    await running.start()
    job = job_of(OrderSide.BUY, "10")
    await running.send(job)
    await until(lambda: job.client_order_id in running.fake.by_client_id, "the order reached Alpaca")
    await asyncio.sleep(0.05)
    running.fake.fill(job.client_order_id, "4", "50.00")
    await asyncio.sleep(0.3)
    assert await running.reports() == [], "a partial fill is progress, not an outcome"
    running.fake.fill(job.client_order_id, "6", "50.50")

    [report] = await running.wait_reports()
    assert report["status"] == "filled"
    assert report["client_order_id"] == job.client_order_id
    assert Decimal(report["quantity"]) == 10
    assert Decimal(report["price"]) == Decimal("50.30")  # (4 x 50.00 + 6 x 50.50) / 10
    assert Decimal(report["fee"]) == 0
    pool = running.broker.pool
    fills = await pool.fetch(
        "SELECT quantity, price FROM broker_fills WHERE client_order_id = $1", job.client_order_id
    )
    assert [(r["quantity"], r["price"]) for r in fills] == [(Decimal(10), Decimal("50.30"))]
    assert await pool.fetchval("SELECT status FROM broker_orders") == "filled"
    # The engine's cash is Alpaca's; the job left the processing list once reported.
    assert await pool.fetchval("SELECT cash FROM broker_account") == Decimal("100000") - Decimal("503.00")
    assert await running.redis.llen(processing_queue(QUEUE_BROKER_ORDERS)) == 0


async def test_a_job_sent_twice_is_one_order_and_the_duplicate_is_followed(make) -> None:
    running = make()
    await running.start()
    job = job_of(OrderSide.BUY, "3")
    message = await running.send(job)
    await until(lambda: job.client_order_id in running.fake.by_client_id, "the order reached Alpaca")
    await running.redis.lpush(QUEUE_BROKER_ORDERS, message)  # the outbox pushed it again
    await until(lambda: running.fake.request_count("POST", "/v2/orders") == 2, "the second submit")
    await asyncio.sleep(0.1)
    running.fake.fill(job.client_order_id, "3")

    await running.wait_reports()
    await asyncio.sleep(0.2)
    reports = await running.reports()
    assert len(running.fake.orders) == 1
    statuses = [s for m, p, s in running.fake.requests if (m, p) == ("POST", "/v2/orders")]
    assert statuses == [200, 422], "the second submit met Alpaca's duplicate refusal"
    # Every report of the order (the engine applies the first, ignores any other) says the same.
    assert {(r["client_order_id"], r["status"], Decimal(r["quantity"])) for r in reports} == {
        (job.client_order_id, "filled", Decimal(3))
    }
    assert await running.broker.pool.fetchval("SELECT count(*) FROM broker_fills") == 1
    assert await running.redis.llen(processing_queue(QUEUE_BROKER_ORDERS)) == 0


async def test_a_refused_order_is_a_rejection_with_alpacas_reason_never_retried(make) -> None:
    running = make(cash="1000", fill_mode="auto")
    await running.start()
    job = job_of(OrderSide.BUY, "100")  # $5,000 with $1,000 of buying power

    await running.send(job)
    [report] = await running.wait_reports()
    assert report["status"] == "rejected"
    assert "insufficient buying power" in report["reject_reason"]
    assert "HTTP 403" in report["reject_reason"]
    assert running.fake.request_count("POST", "/v2/orders") == 1
    row = await running.broker.pool.fetchrow("SELECT status, reject_reason FROM broker_orders")
    assert row["status"] == "rejected" and "insufficient buying power" in row["reject_reason"]
    assert await running.broker.pool.fetchval("SELECT count(*) FROM broker_fills") == 0


async def test_a_stream_dropped_mid_fill_reconnects_and_catches_up(make) -> None:
    running = make()
    await running.start()
    job = job_of(OrderSide.BUY, "10")
    await running.send(job)
    await until(lambda: job.client_order_id in running.fake.by_client_id, "the order reached Alpaca")
    await asyncio.sleep(0.05)
    running.fake.fill(job.client_order_id, "4", "50.00")
    await until(lambda: running.broker.last_event_at is not None, "the partial fill arrived")
    await asyncio.sleep(0.1)

    running.fake.drop_stream()
    await asyncio.sleep(0.2)
    running.fake.fill(job.client_order_id, "6", "51.00")  # the final fill, while nobody listens
    await asyncio.sleep(0.5)
    assert await running.reports() == [], "the fill's event was lost with the connection"
    catch_ups = running.broker.catch_ups
    running.fake.restore_stream()

    [report] = await running.wait_reports()
    assert (report["status"], Decimal(report["quantity"]), Decimal(report["price"])) == (
        "filled",
        Decimal(10),
        Decimal("50.60"),
    )
    assert running.broker.stream.connections >= 2
    assert running.broker.catch_ups > catch_ups
    assert running.fake.request_count("GET", "/v2/orders") >= 1, "the catch-up listed the orders"


@pytest.mark.parametrize("status", [429, 503])
async def test_a_storm_of_429_or_5xx_is_waited_out_and_the_order_placed_once(make, status: int) -> None:
    running = make(fill_mode="auto")
    await running.start()
    running.fake.fail_next(status, 6)  # more than one call's retries (4): the job itself waits too
    job = job_of(OrderSide.BUY, "2")
    await running.send(job)

    [report] = await running.wait_reports()
    assert report["status"] == "filled"
    assert len(running.fake.orders) == 1
    answered = [s for m, p, s in running.fake.requests if (m, p) == ("POST", "/v2/orders")]
    assert answered.count(status) >= 4 and answered[-1] == 200
    assert running.broker.api.retries >= 3
    assert running.fake.rate_limited == 0, "our limiter kept us under Alpaca's own limit"


async def test_a_broker_restarted_with_an_order_in_flight_reports_what_filled_meanwhile(make) -> None:
    first = make()
    await first.start()
    job = job_of(OrderSide.BUY, "5")
    await first.send(job)
    await until(lambda: job.client_order_id in first.fake.by_client_id, "the order reached Alpaca")
    await asyncio.sleep(0.1)
    await first.close()  # the broker goes away with its order working at Alpaca
    assert await first.redis.llen(processing_queue(QUEUE_BROKER_ORDERS)) == 1, "the job waits for its outcome"
    first.fake.fill(job.client_order_id, "5", "49.00")  # filled while no broker listens

    second = Running(first.fake, successor(first.broker, first.fake), first.redis)
    await second.start()
    try:  # stopped even when a check fails: a broker left running would take later tests' jobs
        [report] = await second.wait_reports()
        assert (report["status"], Decimal(report["quantity"]), Decimal(report["price"])) == (
            "filled",
            Decimal(5),
            Decimal("49.00"),
        )
        assert len(first.fake.orders) == 1, "the order was not placed twice"
        # The report is sent before the job leaves the processing list: wait for that too.
        for _ in range(500):
            if await second.redis.llen(processing_queue(QUEUE_BROKER_ORDERS)) == 0:
                break
            await asyncio.sleep(0.02)
        assert await second.redis.llen(processing_queue(QUEUE_BROKER_ORDERS)) == 0
    finally:
        await second.close()
