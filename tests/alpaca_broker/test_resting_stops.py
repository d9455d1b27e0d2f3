"""Protective stops resting at the broker (issue 14), against the local Alpaca server through
the real SDK: placed for a held position, replaced when the engine trails it, cancelled when
the position is sold for another reason, and still filling when the engine is dead; the
engine applies that fill once when it comes back, and does not sell again."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.alpaca_broker.resting_stops import broker_stop_price
from services.shared.orders import OrderJob
from services.shared.redis_keys import QUEUE_BROKER_FILLS
from services.shared.schemas import OrderReason, OrderSide
from services.trading.live.engine import TickReport, TradingEngine
from tests.alpaca_broker.harness import MIDDAY, ORDER_SIGNER, job_of, until

pytestmark = pytest.mark.integration


async def _hold(running, quantity: str, stop: str, engine: TradingEngine | None = None) -> OrderJob:
    """A position bought through the broker (applied by `engine` if given), with the stop
    levels the engine's fill handler writes for it."""
    buy = job_of(OrderSide.BUY, quantity)
    await running.send(buy)
    await running.wait_reports()
    if engine is not None:
        await engine.duties.apply_reports(MIDDAY, TickReport(MIDDAY))
    await running.broker.pool.execute(
        """INSERT INTO position_stop_levels (ticker, entry_price, stop_loss_price, take_profit_price, atr_value,
               atr_multiplier, reward_risk_ratio, signal_confidence, opened_by_decision, created_at, updated_at)
           VALUES ('XYZ', 50, $1, 60, 1.5, 2, 2, 0.8, $2, $3, $3)""",
        Decimal(stop),
        buy.trading_decision_id,
        MIDDAY,
    )
    return buy


def _open_stops(fake) -> list:
    with fake.lock:
        return [o for o in fake.orders.values() if o.type == "stop" and o.open]


async def _rows(pool) -> list[tuple]:
    rows = await pool.fetch(
        "SELECT status, quantity, stop_price, reason, time_in_force FROM broker_orders WHERE order_type = 'stop' ORDER BY id"
    )
    return [tuple(r.values()) for r in rows]


def test_the_brokers_stop_price_never_fires_before_the_engines() -> None:
    assert broker_stop_price(Decimal("48.1299")) == Decimal("48.12")
    assert broker_stop_price(Decimal("0.56789")) == Decimal("0.5678")
    assert broker_stop_price(Decimal("46.5")) == Decimal("46.50")


async def test_a_stop_rests_at_the_broker_and_is_replaced_when_the_engine_trails_it(make) -> None:
    running = make(fill_mode="auto", resting_stops=True, stop_sync_seconds=60)
    await running.start()
    pool = running.broker.pool
    await _hold(running, "10", "46.5")
    await running.broker.stops.sync()

    [stop] = _open_stops(running.fake)
    assert (stop.side, stop.qty, stop.stop_price, stop.time_in_force) == ("sell", 10, Decimal("46.50"), "gtc")
    first_id = stop.client_order_id

    await pool.execute(  # the engine trails it (a protective pass)
        "UPDATE position_stop_levels SET stop_loss_price = 48.1299, trailing_stop_active = true"
    )
    assert await running.broker.stops.sync() == 1
    [stop] = _open_stops(running.fake)
    assert (stop.qty, stop.stop_price, stop.replaces) == (
        10,
        Decimal("48.12"),
        running.fake.order(first_id).id,
    )
    assert running.fake.order(first_id).status == "replaced"
    assert running.fake.request_count("PATCH") == 1
    assert await _rows(pool) == [
        ("cancelled", 10, Decimal("46.50"), "stop_loss", "gtc"),
        ("accepted", 10, Decimal("48.12"), "trailing_stop", "gtc"),
    ]
    assert await running.broker.stops.sync() == 0, "in line: nothing to change"
    # Waited for by name: when the PATCH overtakes the exchange's 5 ms `new`, no `new` is sent.
    await until(
        lambda: any(e["data"]["event"] == "replaced" for e in running.fake.events),
        "the replace event was sent",
    )
    assert [r["status"] for r in await running.reports()] == ["filled"], "a replaced stop is no outcome"


async def test_a_position_sold_for_another_reason_cancels_its_resting_stop_first(make) -> None:
    running = make(fill_mode="auto", resting_stops=True, stop_sync_seconds=60)
    await running.start()
    pool = running.broker.pool
    await _hold(running, "10", "46.5")
    await running.broker.stops.sync()
    [stop] = _open_stops(running.fake)

    sale = job_of(OrderSide.SELL, "10").model_copy(update={"reason": OrderReason.TAKE_PROFIT})
    await running.send(sale)
    buy, sold = await running.wait_reports(2)
    assert (sold["status"], sold["reason"], Decimal(sold["quantity"])) == ("filled", "take_profit", 10)
    assert running.fake.order(stop.client_order_id).status == "canceled"
    assert "XYZ" not in running.fake.positions
    assert [r[0] for r in await _rows(pool)] == ["cancelled"]
    assert await running.broker.stops.sync() == 0 and _open_stops(running.fake) == [], "flat: no stop"
    assert len(await running.reports()) == 2, "the cancelled stop is reported to nobody"


async def test_with_the_engine_dead_the_broker_fills_the_stop_and_the_engine_applies_it_once(
    make, redis_client
) -> None:
    running = make(fill_mode="auto", resting_stops=True, stop_sync_seconds=60)
    await running.start()
    pool = running.broker.pool
    engine = TradingEngine(pool, redis_client, running.broker.clock, order_signer=ORDER_SIGNER)
    await engine.start()
    await _hold(running, "10", "46.5", engine)  # the buy in the engine's books, with its stop
    await running.broker.stops.sync()
    await engine.stop()  # the engine is gone; the broker and Alpaca are not

    running.fake.set_price("XYZ", "45.00")  # the price falls through the stop
    reports = await running.wait_reports(1)
    [stop_fill] = [r for r in reports if r["side"] == "sell"]
    assert (stop_fill["reason"], Decimal(stop_fill["price"]), Decimal(stop_fill["quantity"])) == (
        "stop_loss",
        Decimal("45.00"),
        10,
    )
    # A broker restart would send it again: the engine applies it once.
    await redis_client.lpush(QUEUE_BROKER_FILLS, json.dumps(stop_fill))

    engine = TradingEngine(pool, redis_client, running.broker.clock, order_signer=ORDER_SIGNER)
    await engine.start()
    applied = TickReport(MIDDAY)
    await engine.duties.apply_reports(MIDDAY, applied)
    assert applied.reports_applied == 1
    [trade] = await pool.fetch("SELECT * FROM closed_trades")
    assert (trade["exit_reason"], trade["exit_price"], trade["quantity"]) == (
        "stop_loss",
        Decimal("45.00"),
        10,
    )
    assert not await pool.fetchval("SELECT active FROM position_stop_levels")
    await engine.tick()  # its own stop check: nothing held, nothing sold
    assert await pool.fetchval("SELECT count(*) FROM order_outbox") == 0
    await engine.stop()

    # An exit that was on its way anyway is not sold a second time.
    late = job_of(OrderSide.SELL, "10").model_copy(update={"reason": OrderReason.STOP_LOSS})
    await running.send(late)
    [refused] = await running.wait_reports(1)
    assert (refused["client_order_id"], refused["status"]) == (late.client_order_id, "rejected")
    with running.fake.lock:
        sells = [o for o in running.fake.orders.values() if o.side == "sell" and o.filled_qty]
    assert len(sells) == 1, "one sale: the resting stop's"
