"""Reading and writing the FIFO lot book (`tax_lots.py`) in the `tax_lots` table, one row per
lot piece, inside the caller's transaction."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from services.shared.schemas import TaxLotStatus
from services.trading.core.tax_lots import LotUpdate, TaxLot, TaxLotBook, WashSale

_UPSERT = """
INSERT INTO tax_lots (id, ticker, quantity, remaining_quantity, cost_basis_per_share, acquisition_date,
    holding_period_start, origin_lot_id, first_share, parent_lot_id, status, closed_date, exit_price,
    realized_pnl, wash_sale_flag, wash_sale_details, basis_adjustment, order_id, fees, sale_fees, holding_term)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (id) DO UPDATE SET quantity = EXCLUDED.quantity, remaining_quantity = EXCLUDED.remaining_quantity,
    cost_basis_per_share = EXCLUDED.cost_basis_per_share, holding_period_start = EXCLUDED.holding_period_start,
    first_share = EXCLUDED.first_share, parent_lot_id = EXCLUDED.parent_lot_id, status = EXCLUDED.status,
    closed_date = EXCLUDED.closed_date, exit_price = EXCLUDED.exit_price, realized_pnl = EXCLUDED.realized_pnl,
    wash_sale_flag = EXCLUDED.wash_sale_flag, wash_sale_details = EXCLUDED.wash_sale_details,
    basis_adjustment = EXCLUDED.basis_adjustment, fees = EXCLUDED.fees, sale_fees = EXCLUDED.sale_fees,
    holding_term = EXCLUDED.holding_term
"""


def _wash_json(wash: WashSale | None) -> dict[str, Any] | None:
    if wash is None:
        return None
    return {**{k: str(v) for k, v in asdict(wash).items()}, "description": wash.describe()}


def _wash_value(data: dict[str, Any] | None) -> WashSale | None:
    if not data:
        return None
    return WashSale(
        data["ticker"],
        int(data["sale_lot_id"]),
        int(data["replacement_lot_id"]),
        Decimal(data["quantity"]),
        date.fromisoformat(data["sale_date"]),
        date.fromisoformat(data["replacement_acquired"]),
        Decimal(data["disallowed_loss"]),
        date.fromisoformat(data["holding_period_start"]),
        Decimal(data.get("disallowed_fees", "0")),  # absent from records written before fees
    )


def _lot(row: asyncpg.Record) -> TaxLot:
    return TaxLot(
        lot_id=row["id"],
        ticker=row["ticker"],
        quantity=row["quantity"],
        cost_basis_per_share=row["cost_basis_per_share"],
        acquisition_date=row["acquisition_date"],
        holding_period_start=row["holding_period_start"],
        origin_lot_id=row["origin_lot_id"],
        first_share=row["first_share"],
        status=TaxLotStatus(row["status"]),
        closed_date=row["closed_date"],
        exit_price=row["exit_price"],
        wash_sale=_wash_value(row["wash_sale_details"]),
        basis_adjustment=_wash_value(row["basis_adjustment"]),
        parent_lot_id=row["parent_lot_id"],
        order_id=str(row["order_id"]) if row["order_id"] is not None else None,
        fees=row["fees"],
        sale_fees=row["sale_fees"],
    )


async def load_book(connection: asyncpg.Connection, ticker: str) -> TaxLotBook:
    """The ticker's lot book, locked against a concurrent writer for this transaction."""
    rows = await connection.fetch("SELECT * FROM tax_lots WHERE ticker = $1 ORDER BY id FOR UPDATE", ticker)
    next_id = await connection.fetchval("SELECT coalesce(max(id), 0) + 1 FROM tax_lots")
    dates = [d for r in rows for d in (r["acquisition_date"], r["closed_date"]) if d is not None]
    return TaxLotBook(tuple(_lot(r) for r in rows), next_id, max(dates) if dates else None)


async def all_lots(executor: asyncpg.Pool | asyncpg.Connection) -> tuple[TaxLot, ...]:
    """Every lot piece on record, every ticker, read without a lock (for reports)."""
    return tuple(_lot(r) for r in await executor.fetch("SELECT * FROM tax_lots ORDER BY id"))


async def save(connection: asyncpg.Connection, update: LotUpdate) -> None:
    await connection.executemany(
        _UPSERT,
        [
            (
                lot.lot_id,
                lot.ticker,
                lot.quantity,
                lot.quantity if lot.is_open else Decimal(0),
                lot.cost_basis_per_share,
                lot.acquisition_date,
                lot.holding_period_start,
                lot.origin_lot_id,
                lot.first_share,
                lot.parent_lot_id,
                lot.status.value,
                lot.closed_date,
                lot.exit_price,
                None if lot.is_open else lot.realized_pnl,
                lot.wash_sale_flag,
                _wash_json(lot.wash_sale),
                _wash_json(lot.basis_adjustment),
                int(lot.order_id) if lot.order_id else None,
                lot.fees,
                lot.sale_fees,
                lot.term.value if lot.term is not None else None,
            )
            for lot in update.changed
        ],
    )
