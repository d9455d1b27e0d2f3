"""Tax lots: FIFO closing and wash sales (seed task 11.2, docs/contracts.md section 6, IRS Publication 550).

The rule, as implemented:

1. Every buy opens a lot at its price, with its commission and fees in the basis (IRS Pub. 550:
   the basis of bought stock includes the costs of buying it). A sell closes open lots of the
   ticker first in, first out (by purchase date, then purchase order, then share position
   within a lot), splitting the last lot it touches; each closed piece realizes its amount
   realized (`exit * qty` less its share of the sale's fees: selling costs reduce it) less its
   cost basis (`basis * qty` plus its share of the purchase fees). A lot split in two shares
   its fees pro rata by quantity, the rest taking the remainder, so no cent is lost or made.
2. A closed piece with a loss is a wash sale when replacement shares exist: shares of the same
   ticker acquired within 30 calendar days before or after the sale date that were not sold in
   the loss sale itself, are still held when matched, did not come from the same purchase as
   the sold shares (Rev. Rul. 56-602: the rest of one's own lot is not a repurchase) and have
   not already absorbed a washed share. Replacement shares are matched in acquisition order,
   each absorbing at most one washed share; loss shares are matched in the order they were
   sold (oldest sale first, then FIFO within the sale).
3. For each matched share the loss is disallowed (the sold piece becomes `washed`, with the
   details), added to the replacement share's basis, and the replacement's holding period
   starts earlier by the sold share's holding period. Unmatched loss shares stay realized.
   The loss includes both sides' fees; its price part raises the replacement's per-share
   basis, its fee part the replacement's fees, so the total moved is exactly the loss.
4. Replacements bought *after* the sale are found when the buy is recorded: `record_entry`
   checks loss pieces closed in the last 30 days, so both directions use the same matching.
5. A closed piece's gain or loss is long term when it was held more than one year, counted
   from its holding period start (tacked on by a wash sale): sold after the first anniversary
   of that date (a 29 February start has its anniversary on 28 February), else short term.

Pure: a `TaxLotBook` value goes in, a new one comes out with the records to persist. Events
must be recorded in trade-date order; the book refuses to go back in time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from services.shared.schemas import TaxLotStatus
from services.trading.core.models import ZERO

WASH_WINDOW = timedelta(days=30)
# Pro-rata fee shares are stored to 1e-10 of a dollar; the remainder keeps every total exact.
FEE_STEP = Decimal("0.0000000001")


class HoldingTerm(StrEnum):
    SHORT = "short"
    LONG = "long"


def holding_term(holding_period_start: date, sold: date) -> HoldingTerm:
    """Long term when held more than one year: sold after the first anniversary of the start."""
    try:
        anniversary = holding_period_start.replace(year=holding_period_start.year + 1)
    except ValueError:  # 29 February: the year is up on 28 February
        anniversary = date(holding_period_start.year + 1, 2, 28)
    return HoldingTerm.LONG if sold > anniversary else HoldingTerm.SHORT


def pro_rata(amount: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """`part / whole` of `amount`, on the fee step (the caller gives the remainder elsewhere)."""
    if part >= whole:
        return amount
    return (amount * part / whole).quantize(FEE_STEP)


@dataclass(frozen=True, slots=True)
class WashSale:
    """`quantity` loss shares of lot `sale_lot_id`, sold on `sale_date`, replaced by as many
    shares of lot `replacement_lot_id`; `disallowed_loss` (positive) moved into their basis."""

    ticker: str
    sale_lot_id: int
    replacement_lot_id: int
    quantity: Decimal
    sale_date: date
    replacement_acquired: date
    disallowed_loss: Decimal
    holding_period_start: date
    # The part of the loss moved into their fees rather than their per-share basis: the fees,
    # or all of it when the price rose and only the fees made a loss.
    disallowed_fees: Decimal = ZERO

    def describe(self) -> str:
        return (
            f"wash sale: {self.quantity} {self.ticker} sold at a loss on {self.sale_date} (lot "
            f"{self.sale_lot_id}) replaced by shares bought {self.replacement_acquired} (lot "
            f"{self.replacement_lot_id}); ${self.disallowed_loss} loss disallowed and added to "
            f"their basis, holding period from {self.holding_period_start}"
        )


@dataclass(frozen=True, slots=True)
class TaxLot:
    lot_id: int
    ticker: str
    quantity: Decimal
    cost_basis_per_share: Decimal  # the price, plus the price part of any disallowed loss absorbed
    acquisition_date: date
    holding_period_start: date  # earlier than acquisition when a wash sale tacked on
    origin_lot_id: int  # the purchase these shares came from
    first_share: Decimal = ZERO  # offset of this piece's first share within that purchase
    status: TaxLotStatus = TaxLotStatus.OPEN
    closed_date: date | None = None
    exit_price: Decimal | None = None
    wash_sale: WashSale | None = None  # set when this piece's loss was disallowed
    basis_adjustment: WashSale | None = None  # set when these shares absorbed a washed loss
    parent_lot_id: int | None = None
    order_id: str | None = None
    # Purchase commissions and fees of these shares (their share of the buy's), plus the fee
    # part of any disallowed loss absorbed: part of the basis, kept as a total so it is exact.
    fees: Decimal = ZERO
    sale_fees: Decimal = ZERO  # this piece's share of the selling costs of the sale that closed it

    @property
    def is_open(self) -> bool:
        return self.status == TaxLotStatus.OPEN

    @property
    def cost_basis(self) -> Decimal:
        """The piece's whole basis: price basis times quantity, plus its fees."""
        return self.cost_basis_per_share * self.quantity + self.fees

    @property
    def proceeds(self) -> Decimal:
        """The amount realized: the sale price times quantity less the selling costs."""
        if self.exit_price is None:
            return ZERO
        return self.exit_price * self.quantity - self.sale_fees

    @property
    def realized_pnl(self) -> Decimal:
        """Amount realized less cost basis for a closed or washed piece, before any disallowance."""
        if self.exit_price is None:
            return ZERO
        return self.proceeds - self.cost_basis

    @property
    def term(self) -> HoldingTerm | None:
        """Short or long term for a closed or washed piece; None while open."""
        if self.closed_date is None:
            return None
        return holding_term(self.holding_period_start, self.closed_date)

    @property
    def disallowed_loss(self) -> Decimal:
        return self.wash_sale.disallowed_loss if self.wash_sale else ZERO

    @property
    def recognized_pnl(self) -> Decimal:
        """What counts for tax now: the realized P&L less the part a wash sale deferred."""
        return self.realized_pnl + self.disallowed_loss

    @property
    def wash_sale_flag(self) -> bool:
        return self.wash_sale is not None

    @property
    def fifo_key(self) -> tuple[date, int, Decimal]:
        return (self.acquisition_date, self.origin_lot_id, self.first_share)


@dataclass(frozen=True, slots=True)
class TaxLotBook:
    lots: tuple[TaxLot, ...] = ()
    next_lot_id: int = 1
    last_trade_date: date | None = None

    def open_lots(self, ticker: str) -> tuple[TaxLot, ...]:
        """Open lots of `ticker` in FIFO order."""
        return tuple(sorted((lot for lot in self.lots if lot.ticker == ticker and lot.is_open), key=_fifo))

    def open_quantity(self, ticker: str) -> Decimal:
        # Not via open_lots: a total needs no FIFO order, and every fill asks for it.
        return sum((lot.quantity for lot in self.lots if lot.ticker == ticker and lot.is_open), ZERO)

    def lot(self, lot_id: int) -> TaxLot:
        return next(lot for lot in self.lots if lot.lot_id == lot_id)


@dataclass(frozen=True, slots=True)
class LotUpdate:
    """The new book, every lot created or changed (to upsert), and the wash sales found."""

    book: TaxLotBook
    changed: tuple[TaxLot, ...]
    wash_sales: tuple[WashSale, ...]
    closed: tuple[TaxLot, ...] = ()  # pieces closed by this sale, final status

    @property
    def realized_pnl(self) -> Decimal:
        return sum((lot.realized_pnl for lot in self.closed), ZERO)

    @property
    def disallowed_loss(self) -> Decimal:
        return sum((w.disallowed_loss for w in self.wash_sales), ZERO)


def _fifo(lot: TaxLot) -> tuple[date, int, Decimal]:
    return lot.fifo_key


class _Ledger:
    """Working copy inside one pure call: lots by id, fresh ids, and what changed."""

    def __init__(self, book: TaxLotBook) -> None:
        self.lots = {lot.lot_id: lot for lot in book.lots}
        self.next_id = book.next_lot_id
        self.changed: dict[int, TaxLot] = {}
        self.washes: list[WashSale] = []

    def put(self, lot: TaxLot) -> TaxLot:
        self.lots[lot.lot_id] = self.changed[lot.lot_id] = lot
        return lot

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def split_front(self, lot: TaxLot, quantity: Decimal) -> TaxLot:
        """Carve the first `quantity` shares off `lot` as a new piece; the rest keeps the id.
        Fees go with the shares pro rata, the rest keeping the remainder."""
        if quantity >= lot.quantity:
            return lot
        fees = pro_rata(lot.fees, quantity, lot.quantity)
        sale_fees = pro_rata(lot.sale_fees, quantity, lot.quantity)
        self.put(
            replace(
                lot,
                quantity=lot.quantity - quantity,
                first_share=lot.first_share + quantity,
                fees=lot.fees - fees,
                sale_fees=lot.sale_fees - sale_fees,
            )
        )
        return self.put(
            replace(
                lot,
                lot_id=self.new_id(),
                quantity=quantity,
                parent_lot_id=lot.lot_id,
                fees=fees,
                sale_fees=sale_fees,
            )
        )

    def book(self, trade_date: date) -> TaxLotBook:
        return TaxLotBook(tuple(self.lots[i] for i in sorted(self.lots)), self.next_id, trade_date)


def _check_order(book: TaxLotBook, quantity: Decimal, price: Decimal, trade_date: date, fee: Decimal) -> None:
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    if price < 0:
        raise ValueError(f"price must not be negative, got {price}")
    if fee < 0:
        raise ValueError(f"fee must not be negative, got {fee}")
    if book.last_trade_date is not None and trade_date < book.last_trade_date:
        raise ValueError(f"trade dated {trade_date} is before the last recorded trade {book.last_trade_date}")


def record_entry(
    book: TaxLotBook,
    *,
    ticker: str,
    quantity: Decimal,
    price: Decimal,
    trade_date: date,
    order_id: str | None = None,
    fee: Decimal = ZERO,
) -> LotUpdate:
    """A buy: open a lot (its `fee` in the basis), then let its shares replace any loss sold
    in the last 30 days."""
    _check_order(book, quantity, price, trade_date, fee)
    ledger = _Ledger(book)
    lot_id = ledger.new_id()
    ledger.put(
        TaxLot(lot_id, ticker, quantity, price, trade_date, trade_date, lot_id, order_id=order_id, fees=fee)
    )
    pending = [
        lot
        for lot in ledger.lots.values()
        if lot.ticker == ticker
        and lot.status == TaxLotStatus.CLOSED
        and lot.realized_pnl < 0
        and lot.closed_date is not None
        and lot.closed_date >= trade_date - WASH_WINDOW
    ]
    # Oldest sale first. Under FIFO shares leave in acquisition order, so within a day the
    # FIFO key is also the order in which they were sold.
    for loss in sorted(pending, key=lambda lot: (lot.closed_date, lot.fifo_key)):
        _wash(ledger, loss)
    return LotUpdate(ledger.book(trade_date), tuple(ledger.changed.values()), tuple(ledger.washes))


def close_lots_fifo(
    book: TaxLotBook,
    *,
    ticker: str,
    quantity: Decimal,
    price: Decimal,
    trade_date: date,
    order_id: str | None = None,
    fee: Decimal = ZERO,
) -> LotUpdate:
    """A sell: close open lots first in, first out, sharing the sale's `fee` among the pieces
    by quantity; then wash each loss piece against the replacement shares already held
    (bought up to 30 days before)."""
    _check_order(book, quantity, price, trade_date, fee)
    held = book.open_quantity(ticker)
    if quantity > held:
        raise ValueError(f"cannot sell {quantity} {ticker}: only {held} held in open lots")
    ledger = _Ledger(book)
    closed: list[int] = []
    remaining, fee_left = quantity, fee
    for lot in book.open_lots(ticker):
        if remaining <= 0:
            break
        piece = ledger.split_front(lot, min(remaining, lot.quantity))
        sale_fees = pro_rata(fee_left, piece.quantity, remaining)  # the last piece takes the rest
        remaining, fee_left = remaining - piece.quantity, fee_left - sale_fees
        closed_piece = replace(
            piece,
            status=TaxLotStatus.CLOSED,
            closed_date=trade_date,
            exit_price=price,
            order_id=order_id or piece.order_id,
            sale_fees=sale_fees,
        )
        closed.append(ledger.put(closed_piece).lot_id)
    washed_pieces: list[int] = []
    for lot_id in closed:
        loss = ledger.lots[lot_id]
        if loss.realized_pnl < 0:
            washed_pieces += _wash(ledger, loss)
    final = [ledger.lots[i] for i in closed + washed_pieces]
    return LotUpdate(
        ledger.book(trade_date), tuple(ledger.changed.values()), tuple(ledger.washes), tuple(final)
    )


def _replacements(ledger: _Ledger, loss: TaxLot) -> list[TaxLot]:
    assert loss.closed_date is not None
    return sorted(
        (
            lot
            for lot in ledger.lots.values()
            if lot.ticker == loss.ticker
            and lot.is_open
            and lot.basis_adjustment is None
            and lot.origin_lot_id != loss.origin_lot_id
            and abs(lot.acquisition_date - loss.closed_date) <= WASH_WINDOW
        ),
        key=_fifo,
    )


def _wash(ledger: _Ledger, loss: TaxLot) -> list[int]:
    """Match the loss piece's shares against replacement shares, one for one. Returns the ids
    of washed pieces carved off `loss` (the piece itself keeps the unmatched remainder)."""
    carved: list[int] = []
    for replacement in _replacements(ledger, loss):
        loss = ledger.lots[loss.lot_id]
        matched = min(loss.quantity, replacement.quantity)
        washed = ledger.split_front(loss, matched)  # the first `matched` shares
        target = ledger.split_front(replacement, matched)
        wash = _wash_record(washed, target)
        ledger.put(replace(washed, status=TaxLotStatus.WASHED, wash_sale=wash))
        # The loss's price part per share onto the per-share basis, the rest (fees) onto the
        # fees: together exactly the disallowed loss.
        ledger.put(
            replace(
                target,
                cost_basis_per_share=target.cost_basis_per_share + _price_loss(washed),
                fees=target.fees + wash.disallowed_fees,
                holding_period_start=wash.holding_period_start,
                basis_adjustment=wash,
            )
        )
        ledger.washes.append(wash)
        if washed.lot_id != loss.lot_id:
            carved.append(washed.lot_id)
        else:
            break  # the whole piece is washed
    return carved


def _price_loss(washed: TaxLot) -> Decimal:
    """The per-share part of a washed loss that came from the price (none when the price rose
    and only the fees made it a loss: a basis never falls below the price paid)."""
    assert washed.exit_price is not None
    return max(washed.cost_basis_per_share - washed.exit_price, ZERO)


def _wash_record(washed: TaxLot, replacement: TaxLot) -> WashSale:
    assert washed.closed_date is not None
    held_for = washed.closed_date - washed.holding_period_start
    disallowed = -washed.realized_pnl
    return WashSale(
        ticker=washed.ticker,
        sale_lot_id=washed.lot_id,
        replacement_lot_id=replacement.lot_id,
        quantity=washed.quantity,
        sale_date=washed.closed_date,
        replacement_acquired=replacement.acquisition_date,
        disallowed_loss=disallowed,
        holding_period_start=replacement.acquisition_date - held_for,
        disallowed_fees=disallowed - _price_loss(washed) * washed.quantity,
    )
