"""The messages on the order and fill queues (docs/contracts.md section 4), validated at both ends.

Quantities and prices travel as decimal strings, never floats, so a share count or a price
reaches the broker exactly as the engine computed it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from services.shared.schemas import OrderReason, OrderSide, TradingMode
from services.shared.tickers import Ticker

DecimalString = Annotated[Decimal, PlainSerializer(lambda d: str(d), return_type=str)]


class Tranche(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    count: int = Field(ge=1)
    parent_decision_id: UUID


class OrderJob(BaseModel):
    """One order for the broker. `client_order_id` is deterministic (decision id + tranche
    index), so the same job delivered twice is filled once."""

    model_config = ConfigDict(frozen=True)

    job_id: UUID
    client_order_id: str = Field(min_length=1, max_length=64)
    trading_decision_id: UUID
    ticker: Ticker
    side: OrderSide
    quantity: DecimalString = Field(gt=0)
    order_type: Literal["market"] = "market"
    time_in_force: Literal["day"] = "day"
    mode: TradingMode = TradingMode.PAPER
    reason: OrderReason
    tranche: Tranche | None = None
    created_at: AwareDatetime


def client_order_id(decision_id: UUID, tranche_index: int = 0) -> str:
    return f"{decision_id.hex}-{tranche_index}"


class FillReport(BaseModel):
    """What the broker says happened to an order: filled (with price) or rejected (with why)."""

    model_config = ConfigDict(frozen=True)

    client_order_id: str
    trading_decision_id: UUID
    broker_order_id: int
    ticker: str
    side: OrderSide
    reason: OrderReason
    status: Literal["filled", "rejected"]
    quantity: DecimalString = Field(gt=0)
    price: DecimalString | None = None
    fee: DecimalString = Decimal(0)
    reject_reason: str | None = None
    fill_id: int | None = None
    at: datetime
