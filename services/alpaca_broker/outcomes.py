"""What an Alpaca order's state means for the engine: still working, filled, or not filled.

The engine's report contract (docs/contracts.md section 4) has one outcome per order, applied
once per `client_order_id`: `filled` with a quantity and price, or `rejected` with a reason.
Alpaca reports executions one by one (`partial_fill`, then `fill`) and may end an order with
part of it filled (cancelled, expired). So an order is reported once, when Alpaca says it is
done: everything it filled, at the average price of its executions, or, when nothing filled,
a rejection naming how it ended. Partial fills in between are progress, not outcomes.

Pure: it reads the SDK's `Order` model and returns values; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from alpaca.trading.enums import OrderStatus
from alpaca.trading.models import Order

# Alpaca's final states for an order. `done_for_day` is not final: a day order then expires.
# `replaced` ends this order and starts another under another id; the engine's market orders
# are never replaced (only resting stops are, and those are not reported as outcomes).
FINISHED = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED})


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["filled", "rejected"]
    quantity: Decimal  # filled quantity; the ordered quantity for a rejection
    price: Decimal | None
    reject_reason: str | None
    at: datetime


def decimal_of(value: str | float | int | None) -> Decimal | None:
    """An amount from the SDK, exactly as Alpaca wrote it (the SDK keeps strings as strings;
    a number it parsed as float goes through its shortest repr, never its binary value)."""
    if value is None or value == "":
        return None
    return Decimal(str(value))


def outcome_of(order: Order, ordered: Decimal) -> Outcome | None:
    """The outcome of a finished order; None while Alpaca may still fill it."""
    if order.status not in FINISHED:
        return None
    filled = decimal_of(order.filled_qty) or Decimal(0)
    price = decimal_of(order.filled_avg_price)
    at = order.filled_at or order.canceled_at or order.expired_at or order.failed_at or order.updated_at
    if filled > 0 and price is not None and price > 0:
        return Outcome("filled", filled, price, None, at)
    how = {
        OrderStatus.CANCELED: "cancelled at the broker before any fill",
        OrderStatus.EXPIRED: "expired at the broker unfilled",
        OrderStatus.REJECTED: "rejected by the broker",
    }.get(order.status, f"ended at the broker as {order.status.value} unfilled")
    return Outcome("rejected", ordered, None, f"alpaca: {how}", at)
