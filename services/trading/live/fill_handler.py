"""What the engine does when the broker reports an order's outcome (seed tasks 25.1–25.2).

Each report is applied once, in one transaction, however often it arrives (the broker
re-sends outcomes after a restart): `applied_fills` is keyed by `client_order_id`. Reports are
applied in the order the broker sent them, against the engine's own books as of that report
(its open tax lots), never against what the broker holds now: the broker may have filled
later orders of the same ticker whose reports are still on their way.

- A filled buy opens (or adds to) a tax lot, and places the position's stop and take-profit
  around the real fill price with the ATR the decision used.
- A filled sell closes lots first in, first out (wash sales included), records the closed
  trade at the position's average entry (its fees: the sell's commission plus the buys'
  commission pro rata, as the backtester counts them), moves `profit * reserve_siphon_pct` into the Reserve
  Pool on a profitable close, and retires the stop levels once nothing is left.
- A rejection is recorded on the order, and cancels the remaining tranches of its entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from services.shared.orders import FillReport
from services.shared.schemas import OrderReason, OrderSide
from services.trading.core import reserve_pool, stop_loss_manager, tax_lots
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import ZERO, ClosedTrade, ReservePoolState, StopLevels
from services.trading.core.reserve_pool import ReserveLedgerEntry
from services.trading.core.trading_window import NEW_YORK
from services.trading.live import tax_lot_store

log = structlog.get_logger(__name__)
STOP_OUT_REASONS = (OrderReason.STOP_LOSS, OrderReason.TRAILING_STOP)
# Stored precision: prices to 1/100 of a cent, ATR a little finer.
PRICE_STEP = Decimal("0.0001")
ATR_STEP = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class FillEffects:
    """What applying one report changed, for the engine's follow-up (breakers, notices)."""

    report: FillReport
    closed_trade: ClosedTrade | None = None
    siphon: ReserveLedgerEntry | None = None
    wash_sales: int = 0

    @property
    def stop_out(self) -> bool:
        return self.report.status == "filled" and self.report.reason in STOP_OUT_REASONS


async def reserve_state(connection: asyncpg.Connection | asyncpg.Pool) -> ReservePoolState:
    row = await connection.fetchrow(
        """SELECT coalesce((SELECT balance_after FROM reserve_pool_ledger ORDER BY id DESC LIMIT 1), 0) AS balance,
                  coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS deposits,
                  coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS withdrawals,
                  max(created_at) AS last_updated
           FROM reserve_pool_ledger"""
    )
    return ReservePoolState(row["balance"], row["deposits"], row["withdrawals"], row["last_updated"])


async def insert_ledger_entry(connection: asyncpg.Connection, entry: ReserveLedgerEntry) -> None:
    await connection.execute(
        """INSERT INTO reserve_pool_ledger (amount, balance_after, trigger_type, reference_id, notes, created_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        entry.amount,
        entry.balance_after,
        entry.trigger_type.value,
        entry.reference_id,
        entry.notes,
        entry.created_at,
    )


async def apply_report(
    pool: asyncpg.Pool, report: FillReport, settings: EngineSettings
) -> FillEffects | None:
    """Apply one broker report; None when it was applied before."""
    async with pool.acquire() as connection, connection.transaction():
        first_time = await connection.fetchval(
            """INSERT INTO applied_fills (client_order_id, status, ticker, side, quantity, price, fee, reported_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING true""",
            report.client_order_id,
            report.status,
            report.ticker,
            report.side.value,
            report.quantity,
            report.price,
            report.fee,
            report.at,
        )
        if not first_time:
            return None
        order = await connection.fetchrow(
            """UPDATE order_outbox SET broker_status = $2, broker_reason = $3 WHERE client_order_id = $1
               RETURNING *""",
            report.client_order_id,
            report.status,
            report.reject_reason,
        )
        if report.status == "rejected":
            await _rejected(connection, report, order)
            return FillEffects(report)
        if report.side is OrderSide.BUY:
            await _bought(connection, report, order)
            return FillEffects(report)
        return await _sold(connection, report, settings)


async def _rejected(connection: asyncpg.Connection, report: FillReport, order: asyncpg.Record | None) -> None:
    log.warning(
        "broker rejected an order",
        ticker=report.ticker,
        side=report.side.value,
        quantity=str(report.quantity),
        reason=report.reject_reason,
    )
    if order is not None and order["tranche_count"] > 1:
        await connection.execute(
            """UPDATE order_outbox SET cancelled_at = $2, cancel_reason = $3
               WHERE trading_decision_id = $1 AND delivered_at IS NULL AND cancelled_at IS NULL""",
            order["trading_decision_id"],
            report.at,
            f"an earlier tranche was rejected: {report.reject_reason}",
        )


def _trade_date(at: datetime):
    return at.astimezone(NEW_YORK).date()


async def _bought(connection: asyncpg.Connection, report: FillReport, order: asyncpg.Record | None) -> None:
    book = await tax_lot_store.load_book(connection, report.ticker)
    held_before = book.open_quantity(report.ticker)
    update = tax_lots.record_entry(
        book,
        ticker=report.ticker,
        quantity=report.quantity,
        price=report.price,
        trade_date=_trade_date(report.at),
        order_id=str(report.broker_order_id),
    )
    await tax_lot_store.save(connection, update)
    plan: dict[str, Any] | None = order["stop_plan"] if order is not None else None
    if plan is None:
        log.error("a buy filled without a stop plan: the position has no stop", ticker=report.ticker)
        return
    existing = await connection.fetchrow(
        "SELECT * FROM position_stop_levels WHERE ticker = $1 AND active FOR UPDATE", report.ticker
    )
    atr, multiplier = Decimal(plan["atr"]).quantize(ATR_STEP), Decimal(plan["atr_multiplier"])
    reward_risk = Decimal(plan["reward_risk_ratio"])
    if existing is not None and held_before <= 0:
        # Levels the sale that emptied the position should have retired (a report applied
        # before this rule existed): a new position starts afresh, never with an old stop.
        log.warning("stale stop levels retired before a new position", ticker=report.ticker)
        await connection.execute(
            "UPDATE position_stop_levels SET active = false, updated_at = $2 WHERE id = $1",
            existing["id"],
            report.at,
        )
        existing = None
    if existing is not None:  # a later tranche or an add-on
        entry, levels = stop_loss_manager.levels_after_add(
            _levels(existing),
            held_before,
            existing["entry_price"],
            report.quantity,
            report.price,
            atr,
            multiplier,
            reward_risk,
            report.at,
        )
        await connection.execute(
            """UPDATE position_stop_levels SET entry_price = $2, stop_loss_price = $3, take_profit_price = $4,
                   updated_at = $5 WHERE id = $1""",
            existing["id"],
            entry.quantize(PRICE_STEP),
            levels.stop_loss_price.quantize(PRICE_STEP),
            levels.take_profit_price.quantize(PRICE_STEP),
            report.at,
        )
        return
    levels = stop_loss_manager.compute_initial_levels(report.price, atr, multiplier, reward_risk, report.at)
    entry = report.price
    levels = replace(
        levels,
        stop_loss_price=levels.stop_loss_price.quantize(PRICE_STEP),
        take_profit_price=levels.take_profit_price.quantize(PRICE_STEP),
    )
    decision = await connection.fetchrow(
        "SELECT id, recommendation_id FROM trading_decisions WHERE id = $1", report.trading_decision_id
    )
    await connection.execute(
        """INSERT INTO position_stop_levels (ticker, entry_price, stop_loss_price, take_profit_price, atr_value,
               atr_multiplier, reward_risk_ratio, signal_confidence, is_micro_trade, opened_by_decision,
               recommendation_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)""",
        report.ticker,
        entry,
        levels.stop_loss_price,
        levels.take_profit_price,
        levels.atr_value,
        levels.atr_multiplier,
        levels.reward_risk_ratio,
        Decimal(plan["confidence"]),
        bool(plan["is_micro_trade"]),
        decision["id"] if decision else None,
        decision["recommendation_id"] if decision else None,
        report.at,
    )


def _levels(row: asyncpg.Record) -> StopLevels:
    return StopLevels(
        row["stop_loss_price"],
        row["take_profit_price"],
        row["trailing_stop_active"],
        row["atr_value"],
        row["atr_multiplier"],
        row["reward_risk_ratio"],
        row["updated_at"],
    )


def entry_fee_share(fills: Iterable[tuple[str, Decimal, Decimal]], quantity: Decimal) -> Decimal:
    """The buy commission a sale of `quantity` carries: the position's unallocated entry fees
    pro rata by quantity, as backtest/book.py does. `fills` are the ticker's earlier
    (side, quantity, fee) in order; each sale takes its share, and a flat position none."""
    fees, held = ZERO, ZERO
    for side, filled, fee in fills:
        if side == OrderSide.BUY.value:
            fees, held = fees + fee, held + filled
            continue
        if held <= filled:
            fees, held = ZERO, ZERO
            continue
        fees, held = fees - fees * filled / held, held - filled
    if held <= 0:
        return ZERO
    return fees * min(quantity, held) / held


async def _earlier_fills(
    connection: asyncpg.Connection, report: FillReport
) -> list[tuple[str, Decimal, Decimal]]:
    rows = await connection.fetch(
        """SELECT side, quantity, fee FROM applied_fills
           WHERE ticker = $1 AND status = 'filled' AND client_order_id <> $2
           ORDER BY reported_at, applied_at, client_order_id""",
        report.ticker,
        report.client_order_id,
    )
    return [(r["side"], r["quantity"], r["fee"]) for r in rows]


async def _sold(connection: asyncpg.Connection, report: FillReport, settings: EngineSettings) -> FillEffects:
    book = await tax_lot_store.load_book(connection, report.ticker)
    update = tax_lots.close_lots_fifo(
        book,
        ticker=report.ticker,
        quantity=report.quantity,
        price=report.price,
        trade_date=_trade_date(report.at),
        order_id=str(report.broker_order_id),
    )
    await tax_lot_store.save(connection, update)
    levels = await connection.fetchrow(
        "SELECT * FROM position_stop_levels WHERE ticker = $1 AND active FOR UPDATE", report.ticker
    )
    entry_price = levels["entry_price"] if levels else update.closed[0].cost_basis_per_share
    entry_fees = entry_fee_share(await _earlier_fills(connection, report), report.quantity)
    trade = ClosedTrade(
        ticker=report.ticker,
        entry_price=entry_price,
        exit_price=report.price,
        quantity=report.quantity,
        entry_at=levels["created_at"] if levels else report.at,
        exit_at=report.at,
        recommendation_id=levels["recommendation_id"] if levels else None,
        is_micro_trade=bool(levels["is_micro_trade"]) if levels else False,
        fees=report.fee + entry_fees,
    )
    await connection.execute(
        """INSERT INTO closed_trades (ticker, quantity, entry_price, exit_price, fees, pnl, entry_at, exit_at,
               exit_reason, recommendation_id, trading_decision_id, is_micro_trade)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
        trade.ticker,
        trade.quantity,
        trade.entry_price,
        trade.exit_price,
        trade.fees,
        trade.pnl,
        trade.entry_at,
        trade.exit_at,
        report.reason.value,
        trade.recommendation_id,
        report.trading_decision_id,
        trade.is_micro_trade,
    )
    if levels is not None and update.book.open_quantity(report.ticker) <= 0:
        await connection.execute(
            "UPDATE position_stop_levels SET active = false, updated_at = $2 WHERE id = $1",
            levels["id"],
            report.at,
        )
    siphon = reserve_pool.siphon_profit(
        await reserve_state(connection),
        trade.pnl,
        report.at,
        settings.reserve,
        reference_id=report.client_order_id,
    )
    if siphon.entry is not None:
        await insert_ledger_entry(connection, siphon.entry)
    return FillEffects(report, trade, siphon.entry, len(update.wash_sales))
