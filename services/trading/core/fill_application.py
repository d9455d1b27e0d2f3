"""Applying a fill to the book of one ticker (seed tasks 25.1–25.2, issue 13): the one rule the
live fill handler and the backtester's book both call.

- A buy opens (or adds to) a tax lot, its commission in the lot's basis. A position's first buy places the stop and take-profit
  around the fill price with the ATR, multiplier and reward/risk its decision used
  (`stop_loss_manager.compute_initial_levels`); a later tranche or an add-on averages the
  entry and moves the levels with it (`levels_after_add`). Levels left over on a flat book
  are retired first: a new position never starts with an old stop.
- A sell closes lots first in, first out (`tax_lots.close_lots_fifo`, wash sales included,
  its fees reducing the amount the lots realize),
  records the closed trade at the position's average entry, and siphons
  `profit * reserve_siphon_pct` into the Reserve Pool on a profitable close. The trade's fees
  are the sale's commission plus the buys' commissions pro rata by quantity, so each buy's
  commission reaches closed trades exactly once and a trade's P&L is what it really made.
  A sale that empties the position retires its levels.
- Stop levels are stored on the price step and ATR a little finer, rounded here once. The
  average entry is kept exact, so a closed trade's P&L is exactly the cash it moved.

The held quantity is always the open lots' (the engine's own books as of the fill), never a
broker's count. Pure: a `PositionBook` goes in, the new one comes out with what changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from services.shared.schemas import OrderSide
from services.trading.core import reserve_pool, stop_loss_manager, tax_lots
from services.trading.core.models import ZERO, ClosedTrade, ReservePoolState, StopLevels
from services.trading.core.reserve_pool import ReserveSettings, ReserveUpdate
from services.trading.core.tax_lots import LotUpdate, TaxLotBook
from services.trading.core.trading_window import NEW_YORK

# Stored precision: prices to 1/100 of a cent, ATR a little finer.
PRICE_STEP = Decimal("0.0001")
ATR_STEP = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class StopPlan:
    """What a buy decision fixed for the stops of the shares it buys."""

    atr: Decimal
    atr_multiplier: Decimal
    reward_risk_ratio: Decimal
    confidence: Decimal
    is_micro_trade: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """One filled order: `price` per share, `fee` its commission, `at` when it filled."""

    quantity: Decimal
    price: Decimal
    fee: Decimal
    at: datetime
    broker_order_id: str | None = None  # written on the tax lots
    client_order_id: str | None = None  # the reference of the Reserve Pool entry it causes

    @property
    def trade_date(self) -> date:
        return self.at.astimezone(NEW_YORK).date()


@dataclass(frozen=True, slots=True)
class PositionBook:
    """The engine's book of one ticker: its lots (open, and closed ones a wash sale may still
    need), and the open position's levels, average entry, buy commissions not yet carried by
    a sale, when it opened, the recommendation that opened it and whether it is a
    micro-trade. `levels` is None when flat, or when shares were bought without a stop plan
    (a fault the live engine logs)."""

    ticker: str
    lots: TaxLotBook = TaxLotBook()
    levels: StopLevels | None = None
    entry_price: Decimal | None = None
    entry_fees: Decimal = ZERO
    opened_at: datetime | None = None
    recommendation_id: int | None = None
    is_micro_trade: bool = False

    @property
    def quantity(self) -> Decimal:
        return self.lots.open_quantity(self.ticker)


@dataclass(frozen=True, slots=True)
class BuyApplied:
    """What a buy changed. `opened`: the position's levels are new (else they moved);
    `stale_levels_retired`: levels left over on a flat book were dropped first."""

    lots: LotUpdate
    opened: bool
    stale_levels_retired: bool = False
    stop_plan_missing: bool = False


@dataclass(frozen=True, slots=True)
class SellApplied:
    """What a sale changed; `flat`: nothing is left, so the levels are retired."""

    lots: LotUpdate
    trade: ClosedTrade
    siphon: ReserveUpdate
    flat: bool

    @property
    def wash_sales(self) -> tuple[tax_lots.WashSale, ...]:
        return self.lots.wash_sales


def apply_buy(
    state: PositionBook, fill: Fill, plan: StopPlan | None, recommendation_id: int | None = None
) -> tuple[PositionBook, BuyApplied]:
    """A filled buy: a lot, and the position's levels placed or moved by `plan`."""
    held_before = state.quantity
    lots = tax_lots.record_entry(
        state.lots,
        ticker=state.ticker,
        quantity=fill.quantity,
        price=fill.price,
        trade_date=fill.trade_date,
        order_id=fill.broker_order_id,
        fee=fill.fee,
    )
    opening = held_before <= 0  # whatever the book still says of an earlier position is over
    stale = opening and state.levels is not None
    fees = fill.fee if opening else state.entry_fees + fill.fee
    if plan is None:
        kept = PositionBook(state.ticker) if opening else state
        return replace(kept, lots=lots.book, entry_fees=fees), BuyApplied(lots, False, stale, True)
    atr = plan.atr.quantize(ATR_STEP)
    if opening or state.levels is None or state.entry_price is None:
        levels = stop_loss_manager.compute_initial_levels(
            fill.price, atr, plan.atr_multiplier, plan.reward_risk_ratio, fill.at
        )
        new = PositionBook(
            state.ticker,
            lots.book,
            _rounded(levels),
            fill.price,
            fees,
            fill.at,
            recommendation_id,
            plan.is_micro_trade,
        )
        return new, BuyApplied(lots, True, stale)
    entry, levels = stop_loss_manager.levels_after_add(
        state.levels,
        held_before,
        state.entry_price,
        fill.quantity,
        fill.price,
        atr,
        plan.atr_multiplier,
        plan.reward_risk_ratio,
        fill.at,
    )
    new = PositionBook(
        state.ticker,
        lots.book,
        _rounded(levels),
        entry,
        fees,
        state.opened_at,
        state.recommendation_id,
        state.is_micro_trade,
    )
    return new, BuyApplied(lots, False, stale)


def apply_sell(
    state: PositionBook, fill: Fill, reserve: ReservePoolState, settings: ReserveSettings
) -> tuple[PositionBook, SellApplied]:
    """A filled sell: lots closed FIFO, the closed trade, the Reserve Pool's share of a profit.
    Selling more than the open lots hold is refused (`ValueError`)."""
    held_before = state.quantity
    lots = tax_lots.close_lots_fifo(
        state.lots,
        ticker=state.ticker,
        quantity=fill.quantity,
        price=fill.price,
        trade_date=fill.trade_date,
        order_id=fill.broker_order_id,
        fee=fill.fee,
    )
    entry_fees = entry_fee_share(state.entry_fees, held_before, fill.quantity)
    trade = ClosedTrade(
        ticker=state.ticker,
        # Shares bought without a stop plan have no recorded entry: their lot's basis stands in.
        entry_price=state.entry_price
        if state.entry_price is not None
        else lots.closed[0].cost_basis_per_share,
        exit_price=fill.price,
        quantity=fill.quantity,
        entry_at=state.opened_at or fill.at,
        exit_at=fill.at,
        recommendation_id=state.recommendation_id,
        is_micro_trade=state.is_micro_trade,
        fees=fill.fee + entry_fees,
    )
    siphon = reserve_pool.siphon_profit(reserve, trade.pnl, fill.at, settings, fill.client_order_id)
    flat = fill.quantity >= held_before
    if flat:
        new = PositionBook(state.ticker, lots.book)
    else:
        new = replace(state, lots=lots.book, entry_fees=state.entry_fees - entry_fees)
    return new, SellApplied(lots, trade, siphon, flat)


def entry_fee_share(entry_fees: Decimal, held: Decimal, sold: Decimal) -> Decimal:
    """The buy commissions a sale of `sold` of `held` shares carries: all of them when it
    empties the position, else their share by quantity."""
    if sold >= held:
        return entry_fees
    return entry_fees * sold / held


def unallocated_entry_fees(fills: Iterable[tuple[OrderSide, Decimal, Decimal]]) -> Decimal:
    """The buy commissions of the open position that no sale has carried yet, from the
    ticker's (side, quantity, fee) fills in the order they were applied."""
    fees, held = ZERO, ZERO
    for side, quantity, fee in fills:
        if side is OrderSide.BUY:
            fees, held = fees + fee, held + quantity
            continue
        fees -= entry_fee_share(fees, held, quantity)
        held = max(held - quantity, ZERO)
    return fees


def _rounded(levels: StopLevels) -> StopLevels:
    # Built directly rather than by dataclasses.replace: this runs on every simulated buy.
    return StopLevels(
        levels.stop_loss_price.quantize(PRICE_STEP),
        levels.take_profit_price.quantize(PRICE_STEP),
        levels.trailing_stop_active,
        levels.atr_value.quantize(ATR_STEP),
        levels.atr_multiplier,
        levels.reward_risk_ratio,
        levels.last_updated,
    )
