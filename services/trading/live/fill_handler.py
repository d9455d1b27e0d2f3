"""What the engine does when the broker reports an order's outcome (seed tasks 25.1–25.2).

Each report is applied once, in one transaction, however often it arrives (the broker
re-sends outcomes after a restart): `applied_fills` is keyed by `client_order_id`. Reports are
applied in the order the broker sent them, against the engine's own books as of that report
(its open tax lots), never against what the broker holds now: the broker may have filled
later orders of the same ticker whose reports are still on their way.

A fill is applied by the core (`core/fill_application.py`, the rule the backtester's book
calls too): this module loads the ticker's book (its lots, active stop levels and the buy
commissions no sale has carried yet), calls `apply_buy` or `apply_sell`, and persists what
changed: lots, levels, the closed trade, the Reserve Pool entry. A rejection is recorded on
the order, and cancels the remaining tranches of its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg
import structlog

from services.shared.orders import FillReport
from services.shared.schemas import OrderReason, OrderSide
from services.trading.core import fill_application
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import ClosedTrade, ReservePoolState, StopLevels
from services.trading.core.reserve_pool import ReserveLedgerEntry
from services.trading.live import outbox, tax_lot_store

log = structlog.get_logger(__name__)
STOP_OUT_REASONS = (OrderReason.STOP_LOSS, OrderReason.TRAILING_STOP)


@dataclass(frozen=True, slots=True)
class FillEffects:
    """What applying one report changed, for the engine's follow-up (breakers, notices)."""

    report: FillReport
    closed_trade: ClosedTrade | None = None
    siphon: ReserveLedgerEntry | None = None
    wash_sales: int = 0
    tranches_cancelled: int = 0  # a rejection: the later tranches of its entry cancelled with it

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
            return FillEffects(report, tranches_cancelled=await _rejected(connection, report, order))
        if report.side is OrderSide.BUY:
            await _bought(connection, report, order)
            return FillEffects(report)
        return await _sold(connection, report, settings)


async def _rejected(connection: asyncpg.Connection, report: FillReport, order: asyncpg.Record | None) -> int:
    """Record the refusal; returns how many later tranches of its entry were cancelled."""
    log.warning(
        "broker rejected an order",
        ticker=report.ticker,
        side=report.side.value,
        quantity=str(report.quantity),
        reason=report.reject_reason,
    )
    if order is None or order["tranche_count"] <= 1:
        return 0
    cancelled = await connection.fetch(
        """UPDATE order_outbox SET cancelled_at = $2, cancel_reason = $3
           WHERE trading_decision_id = $1 AND delivered_at IS NULL AND cancelled_at IS NULL
           RETURNING client_order_id""",
        order["trading_decision_id"],
        report.at,
        f"an earlier tranche was rejected: {report.reject_reason}",
    )
    return len(cancelled)


async def _position_book(
    connection: asyncpg.Connection, report: FillReport
) -> tuple[fill_application.PositionBook, int | None]:
    """The ticker's book as of this report, locked for this transaction, and the id of its
    active stop-level row (None when it has none)."""
    lots = await tax_lot_store.load_book(connection, report.ticker)
    row = await connection.fetchrow(
        "SELECT * FROM position_stop_levels WHERE ticker = $1 AND active FOR UPDATE", report.ticker
    )
    fees = fill_application.unallocated_entry_fees(await _earlier_fills(connection, report))
    if row is None:
        return fill_application.PositionBook(report.ticker, lots, entry_fees=fees), None
    book = fill_application.PositionBook(
        report.ticker,
        lots,
        _levels(row),
        row["entry_price"],
        fees,
        row["created_at"],
        row["recommendation_id"],
        bool(row["is_micro_trade"]),
    )
    return book, row["id"]


def _fill(report: FillReport) -> fill_application.Fill:
    return fill_application.Fill(
        report.quantity,
        report.price,
        report.fee,
        report.at,
        str(report.broker_order_id),
        report.client_order_id,
    )


def _stop_plan(order: asyncpg.Record | None) -> fill_application.StopPlan | None:
    return outbox.stored_plan(order["stop_plan"] if order is not None else None)


async def _bought(connection: asyncpg.Connection, report: FillReport, order: asyncpg.Record | None) -> None:
    state, row_id = await _position_book(connection, report)
    decision = await connection.fetchrow(
        "SELECT id, recommendation_id FROM trading_decisions WHERE id = $1", report.trading_decision_id
    )
    plan = _stop_plan(order)
    book, applied = fill_application.apply_buy(
        state, _fill(report), plan, decision["recommendation_id"] if decision else None
    )
    await tax_lot_store.save(connection, applied.lots)
    if applied.stale_levels_retired:
        # Levels the sale that emptied the position should have retired (a report applied
        # before this rule existed): a new position starts afresh, never with an old stop.
        log.warning("stale stop levels retired before a new position", ticker=report.ticker)
        await _retire_levels(connection, row_id, report.at)
    if plan is None or book.levels is None or book.entry_price is None:
        log.error("a buy filled without a stop plan: the position has no stop", ticker=report.ticker)
        return
    levels = book.levels
    if not applied.opened:  # a later tranche or an add-on
        await connection.execute(
            """UPDATE position_stop_levels SET entry_price = $2, stop_loss_price = $3, take_profit_price = $4,
                   updated_at = $5 WHERE id = $1""",
            row_id,
            book.entry_price,
            levels.stop_loss_price,
            levels.take_profit_price,
            report.at,
        )
        return
    await connection.execute(
        """INSERT INTO position_stop_levels (ticker, entry_price, stop_loss_price, take_profit_price, atr_value,
               atr_multiplier, reward_risk_ratio, signal_confidence, is_micro_trade, opened_by_decision,
               recommendation_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)""",
        report.ticker,
        book.entry_price,
        levels.stop_loss_price,
        levels.take_profit_price,
        levels.atr_value,
        levels.atr_multiplier,
        levels.reward_risk_ratio,
        plan.confidence,
        book.is_micro_trade,
        decision["id"] if decision else None,
        book.recommendation_id,
        report.at,
    )


async def _retire_levels(connection: asyncpg.Connection, row_id: int | None, at: datetime) -> None:
    if row_id is not None:
        await connection.execute(
            "UPDATE position_stop_levels SET active = false, updated_at = $2 WHERE id = $1", row_id, at
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


async def _earlier_fills(
    connection: asyncpg.Connection, report: FillReport
) -> list[tuple[OrderSide, Decimal, Decimal]]:
    rows = await connection.fetch(
        """SELECT side, quantity, fee FROM applied_fills
           WHERE ticker = $1 AND status = 'filled' AND client_order_id <> $2
           ORDER BY reported_at, applied_at, client_order_id""",
        report.ticker,
        report.client_order_id,
    )
    return [(OrderSide(r["side"]), r["quantity"], r["fee"]) for r in rows]


async def _sold(connection: asyncpg.Connection, report: FillReport, settings: EngineSettings) -> FillEffects:
    state, row_id = await _position_book(connection, report)
    _, applied = fill_application.apply_sell(
        state, _fill(report), await reserve_state(connection), settings.reserve
    )
    await tax_lot_store.save(connection, applied.lots)
    trade = applied.trade
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
    if applied.flat:
        await _retire_levels(connection, row_id, report.at)
    siphon = applied.siphon.entry
    if siphon is not None:
        await insert_ledger_entry(connection, siphon)
    return FillEffects(report, trade, siphon, len(applied.wash_sales))
