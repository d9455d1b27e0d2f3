"""The simulated account: cash, holdings with their stop levels, the Reserve Pool, tax lots
and closed trades, changed by the same rule as the engine's fill handler changes the real one
(`core/fill_application.py`: lots, levels, closed trade, siphon).

- A buy fills at the open plus slippage; one the cash cannot pay for is refused, as the
  paper broker refuses it.
- A sell fills at its price less slippage; its trade and the Reserve Pool's share of a profit
  are the core's.

This is the imperative shell: it keeps the book in its own working state (holdings, a lot
book per ticker) and hands each fill to the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from services.shared.schemas import OrderReason, TaxLotStatus
from services.trading.backtest.config import FillModel
from services.trading.backtest.fill_model import BUY, SELL, market_fill_price
from services.trading.backtest.results import FillRecord
from services.trading.core import fill_application
from services.trading.core.fill_application import Fill, PositionBook, StopPlan
from services.trading.core.models import (
    ZERO,
    ClosedTrade,
    OpenPosition,
    PortfolioState,
    ReservePoolState,
    StopLevels,
)
from services.trading.core.reserve_pool import ReserveLedgerEntry, ReserveSettings
from services.trading.core.tax_lots import LotUpdate, TaxLot, TaxLotBook, WashSale

WASH_WINDOW = timedelta(days=31)  # closed lots older than this can no longer be washed
__all__ = ["Book", "Holding", "StopPlan", "TaxSummary", "TradeRecord"]


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
    entry_fees: Decimal = ZERO  # buy commissions no sale has carried yet
    price: Decimal = ZERO  # latest known price
    is_micro_trade: bool = False  # a micro-trade: its own stops, timed close and daily limit

    _position: OpenPosition | None = field(default=None, repr=False, compare=False)

    def position(self, price: Decimal | None = None) -> OpenPosition:
        """The core's value of this holding (at `price` if given). The last one at its own
        price is kept while none of its fields is replaced: the book is read as a
        `PortfolioState` many times a session, and most holdings have not changed."""
        kept = self._position
        if (
            price is None
            and kept is not None
            and kept.current_price is self.price
            and kept.quantity is self.quantity
            and kept.entry_price is self.entry_price
            and kept.stop_loss_price is self.levels.stop_loss_price
            and kept.take_profit_price is self.levels.take_profit_price
            and kept.is_micro_trade is self.is_micro_trade
        ):
            return kept
        position = OpenPosition(
            self.ticker,
            self.quantity,
            self.entry_price,
            price or self.price,
            self.sector,
            self.levels.stop_loss_price,
            self.levels.take_profit_price,
            self.confidence,
            self.is_micro_trade,
            self.opened_at,
        )
        if price is None:
            self._position = position
        return position


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
        self.fills: list[FillRecord] = []
        self.tax = TaxSummary()
        self._lots: dict[str, TaxLotBook] = {}
        self._next_lot_id = 1
        self._exit_levels: list[tuple[Holding, int, float, float, float]] | None = None
        self._exit_floats: dict[
            str, tuple[StopLevels, Decimal, tuple[Holding, int, float, float, float]]
        ] = {}
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

    def exit_levels(self) -> list[tuple[Holding, int, float, float, float]]:
        """Each holding with its row, stop, take-profit and entry as floats, for checking all
        open positions against a bar (`exits.find_exits`). Rebuilt only after a change, and
        then only for the holdings whose levels or entry price changed."""
        if self._exit_levels is None:
            kept, self._exit_floats = self._exit_floats, {}
            for h in self.holdings.values():
                known = kept.get(h.ticker)
                if (
                    known is None
                    or known[0] is not h.levels
                    or known[1] is not h.entry_price
                    or known[2][0] is not h
                ):
                    stop, target = h.levels.stop_loss_price, h.levels.take_profit_price
                    known = (
                        h.levels,
                        h.entry_price,
                        (h, h.row, float(stop), float(target), float(h.entry_price)),
                    )
                self._exit_floats[h.ticker] = known
            self._exit_levels = [known[2] for known in self._exit_floats.values()]
        return self._exit_levels

    def changed(self) -> None:
        """Call after changing holdings or their levels in place."""
        self._exit_levels = self._portfolio = None

    def repriced(self) -> None:
        """Call after changing holdings' prices (the exit levels hold no prices)."""
        self._portfolio = None

    def mark_micro(self, ticker: str) -> None:
        """The holding is a micro-trade (its buy was decided as one)."""
        self.holdings[ticker].is_micro_trade = True
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
        self.fills.append(FillRecord(ticker, BUY, quantity, price, fee, at, OrderReason.ENTRY.value))
        held = self.holdings.get(ticker)
        book, applied = fill_application.apply_buy(
            self._position_book(ticker, held), Fill(quantity, price, fee, at), plan, recommendation_id
        )
        self._record_lots(ticker, applied.lots, trade_day)
        assert book.levels is not None and book.entry_price is not None  # a plan always comes
        if held is None:
            held = Holding(
                ticker,
                row,
                sector,
                quantity,
                book.entry_price,
                book.levels,
                plan.confidence,
                at,
                recommendation_id,
                price=open_price,
                is_micro_trade=book.is_micro_trade,
            )
            self.holdings[ticker] = held
        else:  # a later tranche or an add-on
            held.quantity += quantity
            held.entry_price, held.levels = book.entry_price, book.levels
        held.decisions.add(decision_id)
        held.entry_fees = book.entry_fees
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
        book, applied = fill_application.apply_sell(
            self._position_book(ticker, held),
            Fill(quantity, price, fee, at),
            self.reserve,
            self.reserve_settings,
        )
        self._record_lots(ticker, applied.lots, trade_day)
        self.cash += quantity * price - fee
        self.fills.append(FillRecord(ticker, SELL, quantity, price, fee, at, exit_reason))
        if applied.flat:
            del self.holdings[ticker]
        else:
            held.quantity -= quantity
            held.entry_fees = book.entry_fees
        self.changed()
        if applied.siphon.entry is not None:
            self.reserve = applied.siphon.state
            self.reserve_ledger.append(applied.siphon.entry)
        record = TradeRecord(applied.trade, exit_reason)
        self.trades.append(record)
        return record

    def release_reserve(self, state: ReservePoolState, entry: ReserveLedgerEntry) -> None:
        self.reserve = state
        self.changed()
        self.reserve_ledger.append(entry)

    def _position_book(self, ticker: str, held: Holding | None) -> PositionBook:
        """The core's view of one ticker: its lot book and, when held, the holding's levels."""
        kept = self._lots.get(ticker) or TaxLotBook()
        lots = TaxLotBook(kept.lots, self._next_lot_id, kept.last_trade_date)  # ids are the account's
        if held is None:
            return PositionBook(ticker, lots)
        return PositionBook(
            ticker,
            lots,
            held.levels,
            held.entry_price,
            held.entry_fees,
            held.opened_at,
            held.recommendation_id,
            held.is_micro_trade,
        )

    def _record_lots(self, ticker: str, update: LotUpdate, trade_day: date) -> None:
        self._next_lot_id = update.book.next_lot_id
        self.tax.realized_pnl += update.realized_pnl
        self.tax.disallowed_loss += update.disallowed_loss
        self.tax.wash_sales.extend(update.wash_sales)
        book = update.book
        if update.closed or update.wash_sales:  # only these leave lots the rule no longer reads
            book = TaxLotBook(_lots_still_read(book, trade_day), book.next_lot_id, book.last_trade_date)
        self._lots[ticker] = book


def _lots_still_read(book: TaxLotBook, trade_day: date) -> tuple[TaxLot, ...]:
    """The lots the rule reads again: open lots, and pieces closed at a loss within the
    wash-sale window (a later buy may still wash them). A book of every lot ever would make
    each fill O(history)."""
    horizon = trade_day - WASH_WINDOW
    return tuple(
        lot
        for lot in book.lots
        if lot.is_open
        or (
            lot.status is TaxLotStatus.CLOSED
            and lot.realized_pnl < 0
            and (lot.closed_date or trade_day) >= horizon
        )
    )
