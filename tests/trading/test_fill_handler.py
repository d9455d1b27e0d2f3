"""The live driver of fill application (`live/fill_handler.py` over `core/fill_application.py`),
on real PostgreSQL and Valkey: what it stores is what the core computed."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from services.shared.db import create_pool
from services.shared.orders import FillReport
from services.shared.schemas import OrderReason, OrderSide
from services.trading.core.engine_settings import EngineSettings
from services.trading.live.fill_handler import apply_report
from tests.trading.engine_harness import (
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
async def stack(database_url: str, redis_client: aioredis.Redis):
    pool = await create_pool(database_url, max_size=8)
    days = await seed_ticker(pool, "XYZ", RISING)
    trading_day = sessions(days[-1], 2)[1]
    await add_bar(pool, "XYZ", trading_day, open_=115.0, close=116.0)
    await enable_engine(pool, gradual_entry_tranches=3)
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    await recommend(pool, "XYZ", at(days[-1], 16, 10))
    yield built, trading_day
    await built.engine.stop()
    await close_pool(pool)


async def _filled(pool, order, price: str, instant) -> FillReport:
    broker_order_id = await pool.fetchval(
        """INSERT INTO broker_orders (client_order_id, job_id, ticker, side, quantity, reason, status)
           VALUES ($1, $2, $3, $4, $5, $6, 'filled') RETURNING id""",
        order["client_order_id"],
        order["job_id"],
        order["ticker"],
        order["side"],
        order["quantity"],
        order["reason"],
    )
    return FillReport(
        client_order_id=order["client_order_id"],
        trading_decision_id=order["trading_decision_id"],
        broker_order_id=broker_order_id,
        ticker=order["ticker"],
        side=OrderSide(order["side"]),
        reason=OrderReason(order["reason"]),
        status="filled",
        quantity=order["quantity"],
        price=Decimal(price),
        at=instant,
    )


async def test_a_later_tranche_stores_the_exact_average_entry_and_levels_on_the_price_step(stack) -> None:
    built, day = stack
    pool = built.pool
    await built.step(at(day, 9, 45))  # the first of three tranches, filled and applied
    first = await pool.fetchrow("SELECT quantity, price FROM applied_fills WHERE side = 'buy'")
    second = await pool.fetchrow("SELECT * FROM order_outbox WHERE side = 'buy' AND tranche_index = 2")
    report = await _filled(pool, second, "116.0334", at(day, 10, 16))
    await apply_report(pool, report, EngineSettings(enabled=True))
    levels = await pool.fetchrow("SELECT * FROM position_stop_levels WHERE active")
    average = (first["price"] * first["quantity"] + report.price * report.quantity) / (
        first["quantity"] + report.quantity
    )
    assert average != average.quantize(Decimal("0.0001"))  # off the price step
    assert levels["entry_price"] == average  # exact, as the backtest keeps it
    for level in (levels["stop_loss_price"], levels["take_profit_price"]):
        assert level == level.quantize(Decimal("0.0001"))


async def test_the_tax_lots_store_the_fees_and_the_closed_piece_s_term(stack) -> None:
    """Issue 15: the lot's basis includes the buy's fee, its realized P&L is net of the
    sale's fee, and the closed piece says short or long term."""
    built, day = stack
    pool = built.pool
    await built.step(at(day, 9, 45))
    second = await pool.fetchrow("SELECT * FROM order_outbox WHERE side = 'buy' AND tranche_index = 2")
    buy = await _filled(pool, second, "116", at(day, 10, 16))
    await apply_report(pool, buy.model_copy(update={"fee": Decimal("1.50")}), EngineSettings(enabled=True))
    lot = await pool.fetchrow("SELECT * FROM tax_lots WHERE order_id = $1", buy.broker_order_id)
    assert (lot["fees"], lot["sale_fees"], lot["holding_term"]) == (Decimal("1.50"), 0, None)
    held = await pool.fetchval("SELECT sum(remaining_quantity) FROM tax_lots WHERE status = 'open'")
    sale = {**second, "side": "sell", "reason": "stop_loss", "quantity": held, "client_order_id": "sell-1"}
    sell = await _filled(pool, sale, "120", at(day, 11, 0))
    await apply_report(pool, sell.model_copy(update={"fee": Decimal("0.40")}), EngineSettings(enabled=True))
    closed = await pool.fetch("SELECT * FROM tax_lots WHERE status = 'closed' ORDER BY id")
    assert sum(r["sale_fees"] for r in closed) == Decimal("0.40")
    assert {r["holding_term"] for r in closed} == {"short"}
    for r in closed:
        expected = (
            r["exit_price"] * r["quantity"]
            - r["sale_fees"]
            - (r["cost_basis_per_share"] * r["quantity"] + r["fees"])
        )
        assert r["realized_pnl"] == expected
    bought_fees = await pool.fetchval("SELECT sum(fee) FROM applied_fills WHERE side = 'buy'")
    assert bought_fees >= Decimal("1.50") and sum(r["fees"] for r in closed) == bought_fees
