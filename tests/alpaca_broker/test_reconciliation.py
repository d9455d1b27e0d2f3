"""Reconciliation against the local Alpaca server through the real SDK: a position closed by
hand in the app, a fill missed while the broker was down, an order the broker never got, a
deposit. Each is found, recorded with its rule, told or not as the rule says, and an
unexplained one pauses new entries until the owner acknowledges it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.alpaca_broker.reconciler import Reconciler
from services.shared.orders import FillReport
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS, processing_queue
from services.shared.schemas import OrderSide
from services.trading.core import circuit_breaker
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.reconciliation import Kind, Resolution
from services.trading.live.engine_store import EngineStore
from services.trading.live.fill_handler import apply_report
from services.trading.live.reconciliation_store import ReconciliationStore
from tests.alpaca_broker.harness import MIDDAY, ORDER_SIGNER, job_of, successor, until

pytestmark = pytest.mark.integration


class Told:
    def __init__(self) -> None:
        self.events = []

    def notify(self, event) -> None:
        self.events.append(event)


def _reconciler(broker, told: Told | None = None) -> Reconciler:
    return Reconciler(broker, notifier=told, confirm_seconds=0.1)


async def _apply_reports(running) -> list[FillReport]:
    """The engine's side: every report waiting, applied as the engine applies them."""
    applied = []
    while (message := await running.redis.rpop(QUEUE_BROKER_FILLS)) is not None:
        report = FillReport.model_validate_json(message)
        await apply_report(running.broker.pool, report, EngineSettings())
        applied.append(report)
    return applied


async def _paused(pool) -> str | None:
    return circuit_breaker.entry_block_reason(await EngineStore(pool).breaker_state(), "ABC", MIDDAY)


async def test_a_position_closed_outside_the_engine_is_corrected_told_and_pauses_entries_until_acknowledged(
    make,
) -> None:
    running = make(fill_mode="auto")
    await running.start()
    pool = running.broker.pool
    told = Told()
    reconciler = _reconciler(running.broker, told)
    await running.send(job_of(OrderSide.BUY, "10"))
    await running.wait_reports()
    await _apply_reports(running)
    agreed = await reconciler.run_once("start")
    assert (agreed.found, agreed.paused, told.events) == ((), False, [])

    running.fake.trade_outside("XYZ", "sell", "10", "48.00")  # closed by hand in Alpaca's app
    result = await reconciler.run_once()

    [position] = [d for d in result.found if d.kind is Kind.POSITION]
    assert (position.ticker, position.engine_figure, position.broker_figure) == ("XYZ", 10, 0)
    assert position.resolution is Resolution.UNEXPLAINED and position.pauses
    assert (position.correction.quantity, position.correction.price) == (Decimal(10), Decimal("48.0000"))
    [cash] = [d for d in result.found if d.kind is Kind.CASH]
    assert (cash.resolution, cash.broker_figure - cash.engine_figure) == (
        Resolution.ADOPTED,
        Decimal("480.00"),
    )
    # Recorded with its rule, told, and new entries paused (through the breaker).
    rows = await pool.fetch("SELECT * FROM reconciliation_discrepancies ORDER BY id")
    assert [(r["kind"], r["resolution"], r["pauses"]) for r in rows] == [
        ("position", "unexplained", True),
        ("cash", "adopted", False),
    ]
    assert "correcting sale at 48.0000" in rows[0]["rule"]
    assert [e.data["kind"] for e in told.events] == ["position", "cash"]
    assert told.events[0].data["pauses"] is True
    assert "until the owner acknowledges" in await _paused(pool)
    assert await pool.fetchval("SELECT cash FROM broker_account") == running.fake.cash
    # The books agree from the correction on; the engine applies its report once.
    [report] = await _apply_reports(running)
    assert (report.reason.value, report.side, report.quantity) == ("reconciliation", OrderSide.SELL, 10)
    trade = await pool.fetchrow("SELECT * FROM closed_trades")
    assert (trade["exit_reason"], trade["exit_price"], trade["quantity"]) == (
        "reconciliation",
        Decimal("48.0000"),
        10,
    )
    assert await pool.fetchval("SELECT count(*) FROM tax_lots WHERE status = 'open'") == 0

    again = await reconciler.run_once()
    assert (again.found, again.recorded, again.paused) == ((), 0, True), "nothing new; still paused"
    assert len(told.events) == 2

    store = ReconciliationStore(pool)
    cash_ack = await store.acknowledge(rows[1]["id"], "test", MIDDAY)
    assert cash_ack.changed and cash_ack.paused, "an adopted one does not hold the pause"
    position_ack = await store.acknowledge(rows[0]["id"], "test", MIDDAY)
    assert (position_ack.changed, position_ack.paused) == (True, False)
    assert await _paused(pool) is None
    assert (await store.acknowledge(rows[0]["id"], "test", MIDDAY)).changed is False
    assert await store.open_discrepancies() == []


async def test_shares_bought_by_hand_are_left_to_the_owner_and_told_once(make) -> None:
    running = make(fill_mode="auto")
    await running.start()
    pool = running.broker.pool
    told = Told()
    reconciler = _reconciler(running.broker, told)
    running.fake.trade_outside("XYZ", "buy", "3")

    first = await reconciler.run_once()
    [position] = [d for d in first.found if d.kind is Kind.POSITION]
    assert (position.engine_figure, position.broker_figure, position.correction) == (0, 3, None)
    assert await pool.fetchval("SELECT count(*) FROM broker_fills") == 0, "not adopted"
    assert first.paused
    [row] = await pool.fetch("SELECT * FROM reconciliation_discrepancies WHERE kind = 'position'")
    await ReconciliationStore(pool).acknowledge(row["id"], "test", MIDDAY)

    later = await reconciler.run_once()
    assert later.recorded == 0 and not later.paused, "the same figures, acknowledged: not raised again"
    assert [e.data["kind"] for e in told.events] == ["position", "cash"]


async def test_a_fill_missed_while_the_broker_was_down_is_adopted_from_the_brokers_order(make) -> None:
    first = make()
    await first.start()
    job = job_of(OrderSide.BUY, "5")
    await first.send(job)
    await until(lambda: job.client_order_id in first.fake.by_client_id, "the order reached Alpaca")
    await first.close()
    first.fake.fill(job.client_order_id, "5", "49.00")  # nobody listens

    told = Told()
    second = successor(first.broker, first.fake)
    result = await _reconciler(second, told).run_once("start")

    [missed] = [d for d in result.found if d.kind is Kind.MISSED_OUTCOME]
    assert (missed.client_order_id, missed.resolution, missed.broker_figure) == (
        job.client_order_id,
        Resolution.ADOPTED,
        Decimal(5),
    )
    assert not result.paused
    [report] = [json.loads(m) for m in await first.redis.lrange(QUEUE_BROKER_FILLS, 0, -1)]
    assert (report["status"], Decimal(report["quantity"]), Decimal(report["price"])) == (
        "filled",
        5,
        Decimal("49.00"),
    )
    assert await second.pool.fetchval("SELECT status FROM broker_orders") == "filled"
    assert [e.data["kind"] for e in told.events] == ["missed_outcome"]


async def test_an_order_the_broker_never_got_is_explained_by_its_queued_job_and_paused_on_without(
    make,
) -> None:
    running = make()  # not started: its loop would submit the job
    await running.broker.start()
    pool = running.broker.pool
    job = job_of(OrderSide.BUY, "2")
    message = ORDER_SIGNER.sign(job)
    await running.broker._remember(job, message)  # recorded, then the process died before submitting
    await running.redis.lpush(processing_queue(QUEUE_BROKER_ORDERS), message)
    reconciler = _reconciler(running.broker, Told())

    queued = await reconciler.run_once()
    [d] = queued.found
    assert (d.kind, d.resolution, d.told, queued.paused) == (
        Kind.ORDER_NOT_AT_BROKER,
        Resolution.QUEUED,
        False,
        False,
    )
    assert await pool.fetchval("SELECT resolution FROM reconciliation_discrepancies") == "queued"

    await running.redis.delete(processing_queue(QUEUE_BROKER_ORDERS))  # the job lost with Redis
    lost = await reconciler.run_once()
    [d] = lost.found
    assert (d.resolution, lost.paused) == (Resolution.UNEXPLAINED, True)


async def test_a_deposit_is_adopted_as_the_accounts_cash_and_told_without_pausing(make) -> None:
    running = make()
    await running.start()
    told = Told()
    running.fake.cash += Decimal("2500.00")
    result = await _reconciler(running.broker, told).run_once()
    [cash] = result.found
    assert (cash.kind, cash.resolution, result.paused) == (Kind.CASH, Resolution.ADOPTED, False)
    account = await running.broker.pool.fetchrow("SELECT * FROM broker_account")
    assert (account["cash"], account["buying_power"], account["equity"]) == (
        Decimal("102500.00"),
        Decimal("102500.00"),
        Decimal("102500.00"),
    )
    assert [e.data["resolution"] for e in told.events] == ["adopted"]
