"""The simulated account: cash, holdings with their stop levels, the Reserve Pool, tax lots
and closed trades, changed the way the engine's fill handler changes the real one.

- A buy fill opens (or adds to) a holding and a tax lot, and places the stop and take-profit
  around the average fill price with the ATR, multiplier and reward/risk the decision used
  (`stop_loss_manager.compute_initial_levels`), as `fill_handler._bought` does.
- A sell fill closes lots first in, first out (`tax_lots.close_lots_fifo`, wash sales
  included), records a `ClosedTrade` at the holding's average entry, and siphons
  `profit * reserve_siphon_pct` into the Reserve Pool on a profitable close
  (`reserve_pool.siphon_profit`). Entry commissions are carried into the trade's fees pro rata,
  so a trade's P&L is what it really made.
- A buy the cash cannot pay for is refused, as the paper broker refuses it.

This is the imperative shell: it mutates its own working state; every rule it applies is a
call into the decision core.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import numpy as np

from services.trading.backtest.config import FillModel
from services.trading.backtest.fill_model import BUY, SELL, market_fill_price
from services.trading.core import reserve_pool, stop_loss_manager, tax_lots
from services.trading.core.models import (
    ZERO,
    ClosedTrade,
    OpenPosition,
    PortfolioState,
    ReservePoolState,
    StopLevels,
)
from services.trading.core.reserve_pool import ReserveLedgerEntry, ReserveSettings
from services.trading.core.tax_lots import TaxLotBook, WashSale

WASH_WINDOW = timedelta(days=31)  # closed lots older than this can no longer be washed


@dataclass(frozen=True, slots=True)
class StopPlan:
    """What a buy decision fixed for the stops of the shares it buys."""

    atr: Decimal
    atr_multiplier: Decimal
    reward_risk_ratio: Decimal
    confidence: Decimal


@dataclass(slots=True)
class Holding:
    ticker: str
    row: int
    sector: str
    quantity: Decimal
    entry_price: Decimal  # average fill price
    levels: StopLevels
    confidence: Decimal
    opened_at: datetime
    recommendation_id: int | None
    decisions: set[UUID] = field(default_factory=set)
    entry_fees: Decimal = ZERO
    price: Decimal = ZERO  # latest known price
    is_micro: bool = False  # a micro-trade: its own stops, timed close and daily limit

    def position(self, price: Decimal | None = None) -> OpenPosition:
        return OpenPosition(
            self.ticker,
            self.quantity,
            self.entry_price,
            price or self.price,
            self.sector,
            self.levels.stop_loss_price,
            self.levels.take_profit_price,
            self.confidence,
            self.is_micro,
            self.opened_at,
        )


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """A closed trade with why it closed (the backtest's trade log)."""

    trade: ClosedTrade
    exit_reason: str


@dataclass(slots=True)
class TaxSummary:
    realized_pnl: Decimal = ZERO  # (exit - basis) * qty over every closed lot piece
    disallowed_loss: Decimal = ZERO  # losses deferred by wash sales
    wash_sales: list[WashSale] = field(default_factory=list)


class Book:
    def __init__(self, capital: Decimal, fill: FillModel, reserve_settings: ReserveSettings) -> None:
        self.cash = capital
        self.fill = fill
        self.reserve_settings = reserve_settings
        self.reserve = ReservePoolState()
        self.reserve_ledger: list[ReserveLedgerEntry] = []
        self.holdings: dict[str, Holding] = {}
        self.trades: list[TradeRecord] = []
        self.tax = TaxSummary()
        self._lots: dict[str, TaxLotBook] = {}
        self._next_lot_id = 1
        self._arrays: tuple[np.ndarray, ...] | None = None
        self._portfolio: PortfolioState | None = None

    # -- reading ---------------------------------------------------------------------------

    def value(self) -> Decimal:
        return self.cash + sum((h.quantity * h.price for h in self.holdings.values()), ZERO)

    def portfolio(self) -> PortfolioState:
        """The account as the decision core sees it; rebuilt only after a change."""
        if self._portfolio is None:
            self._portfolio = PortfolioState(
                tuple(h.position() for h in self.holdings.values()), self.cash, self.reserve.balance
            )
        return self._portfolio

    def arrays(self) -> tuple[list[Holding], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Holdings with their rows, stops, take-profits and entries as arrays, for checking all
        open positions against a bar at once. Rebuilt only after a change."""
        if self._arrays is None:
            held = list(self.holdings.values())
            self._arrays = (
                np.array([h.row for h in held], dtype=np.int64),
                np.array([float(h.levels.stop_loss_price) for h in held]),
                np.array([float(h.levels.take_profit_price) for h in held]),
                np.array([float(h.entry_price) for h in held]),
            )
        return (list(self.holdings.values()), *self._arrays)

    def changed(self) -> None:
        """Call after changing holdings or their levels in place."""
        self._arrays = self._portfolio = None

    def repriced(self) -> None:
        """Call after changing holdings' prices (the arrays hold no prices)."""
        self._portfolio = None

    def mark_micro(self, ticker: str) -> None:
        """The holding is a micro-trade (its buy was decided as one)."""
        self.holdings[ticker].is_micro = True
        self.changed()

    def set_levels(self, holding: Holding, levels: StopLevels) -> None:
        holding.levels = levels
        self.changed()

    # -- fills -----------------------------------------------------------------------------

    def buy(
        self,
        ticker: str,
        row: int,
        sector: str,
        quantity: Decimal,
        open_price: Decimal,
        at: datetime,
        trade_day: date,
        plan: StopPlan,
        decision_id: UUID,
        recommendation_id: int | None,
    ) -> str | None:
        """Fill a buy at the open plus slippage; the reason it is refused, or None."""
        price = market_fill_price(open_price, BUY, self.fill)
        fee = self.fill.commission.commission(quantity, price)
        cost = quantity * price + fee
        if cost > self.cash:
            return f"rejected: {quantity} {ticker} at {price:.4f} costs {cost:.2f}, cash is {self.cash:.2f}"
        self.cash -= cost
        self.changed()
        held = self.holdings.get(ticker)
        if held is None:
            levels = stop_loss_manager.compute_initial_levels(
                price, plan.atr, plan.atr_multiplier, plan.reward_risk_ratio, at
            )
            held = Holding(
                ticker,
                row,
                sector,
                quantity,
                price,
                levels,
                plan.confidence,
                at,
                recommendation_id,
                price=open_price,
            )
            self.holdings[ticker] = held
        else:  # a later tranche or an add-on: the same core rule as fill_handler
            held.entry_price, held.levels = stop_loss_manager.levels_after_add(
                held.levels,
                held.quantity,
                held.entry_price,
                quantity,
                price,
                plan.atr,
                plan.atr_multiplier,
                plan.reward_risk_ratio,
                at,
            )
            held.quantity += quantity
        held.decisions.add(decision_id)
        held.entry_fees += fee
        self._record_lots(tax_lots.record_entry, ticker, quantity, price, trade_day)
        return None

    def sell(
        self,
        ticker: str,
        quantity: Decimal,
        price_before_slippage: Decimal,
        at: datetime,
        trade_day: date,
        exit_reason: str,
    ) -> TradeRecord:
        """Fill a sell; close lots, record the trade, siphon a profit into the Reserve Pool."""
        held = self.holdings[ticker]
        quantity = min(quantity, held.quantity)
        price = market_fill_price(price_before_slippage, SELL, self.fill)
        fee = self.fill.commission.commission(quantity, price)
        entry_fees = held.entry_fees * quantity / held.quantity
        trade = ClosedTrade(
            ticker,
            held.entry_price,
            price,
            quantity,
            held.opened_at,
            at,
            held.recommendation_id,
            held.is_micro,
            fees=fee + entry_fees,
        )
        self.cash += quantity * price - fee
        held.quantity -= quantity
        held.entry_fees -= entry_fees
        if held.quantity <= 0:
            del self.holdings[ticker]
        self.changed()
        self._record_lots(tax_lots.close_lots_fifo, ticker, quantity, price, trade_day)
        siphon = reserve_pool.siphon_profit(self.reserve, trade.pnl, at, self.reserve_settings)
        if siphon.entry is not None:
            self.reserve = siphon.state
            self.changed()
            self.reserve_ledger.append(siphon.entry)
        record = TradeRecord(trade, exit_reason)
        self.trades.append(record)
        return record

    def release_reserve(self, state: ReservePoolState, entry: ReserveLedgerEntry) -> None:
        self.reserve = state
        self.changed()
        self.reserve_ledger.append(entry)

    def _record_lots(self, rule, ticker: str, quantity: Decimal, price: Decimal, trade_day: date) -> None:
        # One lot book per ticker, pruned of lots closed beyond the wash-sale window: the rule
        # never reads them again, and a book of every lot ever would make each fill O(history).
        book = self._lots.get(ticker) or TaxLotBook()
        book = replace(book, next_lot_id=self._next_lot_id)
        update = rule(book, ticker=ticker, quantity=quantity, price=price, trade_date=trade_day)
        self._next_lot_id = update.book.next_lot_id
        self.tax.realized_pnl += update.realized_pnl
        self.tax.disallowed_loss += update.disallowed_loss
        self.tax.wash_sales.extend(update.wash_sales)
        horizon = trade_day - WASH_WINDOW
        kept = tuple(
            lot for lot in update.book.lots if lot.is_open or (lot.closed_date or trade_day) >= horizon
        )
        self._lots[ticker] = replace(update.book, lots=kept)
