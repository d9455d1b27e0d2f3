"""The year's tax report from the FIFO lot book (issue 17): Form 8949 rows, Schedule D totals,
the lots open at year end and the wash-sale losses still deferred then.

The rules, as implemented (IRS Form 8949 and Schedule D instructions, Publication 550):

1. The closed or washed lot pieces sold in the year are Form 8949 rows, pieces of one ticker
   alike in dates, holding period and wash sale summed into one row: "qty sh. TICKER",
   the date acquired (the real purchase date; a wash sale's tacked holding period shows only
   in its term), the date sold, the proceeds (amount realized: price times quantity less the
   selling costs), the cost basis (with the purchase fees and any loss a wash sale moved in),
   code `W` and the disallowed loss as a positive adjustment when the piece was washed, and
   the gain or loss (column h = d - e + g).
2. Figures are shown in cents, rounded half up, and every shown row satisfies h = d - e + g:
   a row without a wash sale has h = d - e; a washed row's gain is its exact recognised gain
   rounded (0.00 for a washed loss) and its adjustment is what makes the row add up in cents
   (it differs from the exact disallowed loss by less than a cent).
3. Rows are short term (Part I) or long term (Part II) by the piece's holding term; each Part's
   totals are the sums of its shown rows, which go on Schedule D line 1b, 2 or 3 (short) and
   8b, 9 or 10 (long) according to the box the broker's 1099-B calls for.
4. A piece is open at year end when bought by then and not sold by then. Its basis and holding
   period at year end leave out a wash sale whose loss sale came after year end.
5. A wash-sale deferral is pending at year end when its loss was sold by year end and the
   replacement shares that carry it were not sold by then (they may be bought after it).
6. A loss sold in the last 30 days of the year can still be washed by a purchase up to 30 days
   later; while the report's `as_of` is before that, it lists the loss as not yet settled.

Pure: lots, prices and the report's date go in, a value comes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from services.shared.schemas import TaxLotStatus
from services.trading.core.models import ZERO
from services.trading.core.tax_lots import WASH_WINDOW, HoldingTerm, TaxLot, WashSale, holding_term

CENT = Decimal("0.01")
WASH_CODE = "W"


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def describe_quantity(quantity: Decimal, ticker: str) -> str:
    """Form 8949 column (a): "100 sh. XYZ"; fractional shares keep their digits."""
    text = format(quantity.normalize(), "f")
    return f"{text} sh. {ticker}"


@dataclass(frozen=True, slots=True)
class Form8949Row:
    lot_ids: tuple[int, ...]  # the lot pieces it sums
    ticker: str
    quantity: Decimal
    description: str  # column (a)
    date_acquired: date  # (b)
    date_sold: date  # (c)
    proceeds: Decimal  # (d)
    cost_basis: Decimal  # (e)
    code: str  # (f): "W" or ""
    adjustment: Decimal  # (g): the disallowed loss, positive
    gain: Decimal  # (h) = d - e + g
    term: HoldingTerm
    holding_period_start: date  # shown for reference: the tacked start when a wash sale moved it


@dataclass(frozen=True, slots=True)
class PartTotals:
    """One Part of Form 8949 summed: the figures that go on its Schedule D line."""

    term: HoldingTerm
    schedule_d_lines: str
    rows: int
    proceeds: Decimal
    cost_basis: Decimal
    adjustment: Decimal
    gain: Decimal


@dataclass(frozen=True, slots=True)
class OpenLotRow:
    lot_id: int
    ticker: str
    quantity: Decimal
    date_acquired: date
    holding_period_start: date
    adjusted_basis: Decimal  # with fees and any deferred wash-sale loss carried at year end
    deferred_loss: Decimal  # the part of adjusted_basis a wash sale moved in
    price: Decimal | None  # the last close on or before year end; None when unknown
    price_date: date | None
    market_value: Decimal | None
    unrealized_gain: Decimal | None
    term_if_sold: HoldingTerm  # the term a sale at year end would have had


@dataclass(frozen=True, slots=True)
class PendingDeferral:
    """A wash sale whose disallowed loss still sat in held (or later bought) shares at year end."""

    ticker: str
    sale_lot_id: int
    sale_date: date
    replacement_acquired: date
    quantity: Decimal  # replacement shares still carrying it
    amount: Decimal


@dataclass(frozen=True, slots=True)
class UnsettledLoss:
    """A loss sold in the year's last 30 days: a purchase up to `window_ends` may still wash it."""

    lot_id: int
    ticker: str
    quantity: Decimal
    date_sold: date
    loss: Decimal
    window_ends: date


@dataclass(frozen=True, slots=True)
class TaxReport:
    year: int
    as_of: date  # the day the report was made (what the lot book knew then)
    year_end: date  # the day "at year end" means: 31 December, or `as_of` if earlier
    short_term: tuple[Form8949Row, ...]
    long_term: tuple[Form8949Row, ...]
    short_totals: PartTotals
    long_totals: PartTotals
    open_lots: tuple[OpenLotRow, ...]
    pending_deferrals: tuple[PendingDeferral, ...]
    unsettled_losses: tuple[UnsettledLoss, ...]

    @property
    def net_gain(self) -> Decimal:
        return self.short_totals.gain + self.long_totals.gain

    @property
    def rows(self) -> tuple[Form8949Row, ...]:
        return self.short_term + self.long_term

    @property
    def unrealized_gain(self) -> Decimal:
        return sum((r.unrealized_gain for r in self.open_lots if r.unrealized_gain is not None), ZERO)

    @property
    def pending_deferred(self) -> Decimal:
        return sum((d.amount for d in self.pending_deferrals), ZERO)


SCHEDULE_D_LINES = {HoldingTerm.SHORT: "1b, 2 or 3", HoldingTerm.LONG: "8b, 9 or 10"}


def _sale_key(lot: TaxLot) -> tuple[str, date, date | None, date, TaxLotStatus]:
    # Pieces alike in every column but the amounts make one row: the engine buys in tranches
    # and sells them together, and one row per tranche says nothing more.
    return (lot.ticker, lot.acquisition_date, lot.closed_date, lot.holding_period_start, lot.status)


def form_8949_row(pieces: Sequence[TaxLot]) -> Form8949Row:
    """The row of sold pieces (closed or washed) alike in all but their amounts."""
    first = pieces[0]
    assert first.closed_date is not None and first.term is not None, "only sold pieces have a row"
    assert all(_sale_key(p) == _sale_key(first) for p in pieces), "pieces of one row are alike"
    quantity = sum((p.quantity for p in pieces), ZERO)
    proceeds = cents(sum((p.proceeds for p in pieces), ZERO))
    basis = cents(sum((p.cost_basis for p in pieces), ZERO))
    gain = cents(sum((p.recognized_pnl for p in pieces), ZERO))
    washed = first.status == TaxLotStatus.WASHED
    return Form8949Row(
        lot_ids=tuple(sorted(p.lot_id for p in pieces)),
        ticker=first.ticker,
        quantity=quantity,
        description=describe_quantity(quantity, first.ticker),
        date_acquired=first.acquisition_date,
        date_sold=first.closed_date,
        proceeds=proceeds,
        cost_basis=basis,
        code=WASH_CODE if washed else "",
        adjustment=gain - proceeds + basis if washed else ZERO,
        gain=gain if washed else proceeds - basis,
        term=first.term,
        holding_period_start=first.holding_period_start,
    )


def form_8949_rows(lots: Iterable[TaxLot], year: int) -> tuple[Form8949Row, ...]:
    """The rows of the pieces sold in `year`, in the order sold."""
    groups: dict[tuple[str, date, date | None, date, TaxLotStatus], list[TaxLot]] = {}
    for lot in lots:
        if lot.status != TaxLotStatus.OPEN and lot.closed_date is not None and lot.closed_date.year == year:
            groups.setdefault(_sale_key(lot), []).append(lot)
    return tuple(sorted((form_8949_row(g) for g in groups.values()), key=_row_order))


def part_totals(term: HoldingTerm, rows: Iterable[Form8949Row]) -> PartTotals:
    rows = tuple(rows)
    return PartTotals(
        term=term,
        schedule_d_lines=SCHEDULE_D_LINES[term],
        rows=len(rows),
        proceeds=sum((r.proceeds for r in rows), ZERO),
        cost_basis=sum((r.cost_basis for r in rows), ZERO),
        adjustment=sum((r.adjustment for r in rows), ZERO),
        gain=sum((r.gain for r in rows), ZERO),
    )


def _row_order(row: Form8949Row) -> tuple[date, str, date, tuple[int, ...]]:
    return (row.date_sold, row.ticker, row.date_acquired, row.lot_ids)


def _held_at(lot: TaxLot, day: date) -> bool:
    return lot.acquisition_date <= day and (lot.closed_date is None or lot.closed_date > day)


def _carried(lot: TaxLot, wash: WashSale) -> Decimal:
    """This piece's share of the loss `wash` moved into the shares it came from."""
    return wash.disallowed_loss * lot.quantity / wash.quantity


@dataclass(frozen=True, slots=True)
class _HeldPiece:
    """A piece held at year end, as it stood then (exact figures)."""

    lot: TaxLot
    basis: Decimal
    deferred: Decimal
    start: date
    wash_sale_lot: int | None  # the loss sale whose deferral it carried then

    @property
    def key(self) -> tuple[str, int, date, int | None]:
        # Pieces of one purchase that stood alike at year end were one lot then (a later sale
        # or wash may have split it since): shown as one row.
        return (self.lot.ticker, self.lot.origin_lot_id, self.start, self.wash_sale_lot)


def _held_piece(lot: TaxLot, day: date) -> _HeldPiece:
    wash = lot.basis_adjustment
    if wash is not None and wash.sale_date > day:  # absorbed after `day`: not yet then
        return _HeldPiece(lot, lot.cost_basis - _carried(lot, wash), ZERO, lot.acquisition_date, None)
    deferred = _carried(lot, wash) if wash is not None else ZERO
    return _HeldPiece(lot, lot.cost_basis, deferred, lot.holding_period_start, wash and wash.sale_lot_id)


def open_lot_rows(
    lots: Iterable[TaxLot], day: date, closes: Mapping[str, tuple[date, Decimal]]
) -> tuple[OpenLotRow, ...]:
    """The lots held at `day`, as they stood then, valued at each ticker's close in `closes`."""
    groups: dict[tuple[str, int, date, int | None], list[_HeldPiece]] = {}
    for lot in lots:
        if _held_at(lot, day):
            piece = _held_piece(lot, day)
            groups.setdefault(piece.key, []).append(piece)
    rows = []
    for (ticker, _, start, _), pieces in groups.items():
        quantity = sum((p.lot.quantity for p in pieces), ZERO)
        basis = cents(sum((p.basis for p in pieces), ZERO))
        price_date, price = closes.get(ticker, (None, None))
        value = cents(price * quantity) if price is not None else None
        rows.append(
            OpenLotRow(
                lot_id=min(p.lot.lot_id for p in pieces),
                ticker=ticker,
                quantity=quantity,
                date_acquired=pieces[0].lot.acquisition_date,
                holding_period_start=start,
                adjusted_basis=basis,
                deferred_loss=cents(sum((p.deferred for p in pieces), ZERO)),
                price=price,
                price_date=price_date,
                market_value=value,
                unrealized_gain=value - basis if value is not None else None,
                term_if_sold=holding_term(start, day),
            )
        )
    return tuple(sorted(rows, key=lambda r: (r.ticker, r.date_acquired, r.lot_id)))


def pending_deferrals(lots: Iterable[TaxLot], day: date) -> tuple[PendingDeferral, ...]:
    """Wash sales sold by `day` whose replacement shares were not sold by `day`, one per wash."""
    found: dict[int, PendingDeferral] = {}
    for lot in lots:
        wash = lot.basis_adjustment
        if wash is None or wash.sale_date > day or (lot.closed_date is not None and lot.closed_date <= day):
            continue
        before = found.get(wash.sale_lot_id)
        found[wash.sale_lot_id] = PendingDeferral(
            ticker=wash.ticker,
            sale_lot_id=wash.sale_lot_id,
            sale_date=wash.sale_date,
            replacement_acquired=wash.replacement_acquired,
            quantity=(before.quantity if before else ZERO) + lot.quantity,
            amount=(before.amount if before else ZERO) + _carried(lot, wash),
        )
    rounded = (
        PendingDeferral(
            d.ticker, d.sale_lot_id, d.sale_date, d.replacement_acquired, d.quantity, cents(d.amount)
        )
        for d in found.values()
    )
    return tuple(sorted(rounded, key=lambda d: (d.sale_date, d.ticker, d.sale_lot_id)))


def unsettled_losses(lots: Iterable[TaxLot], year_end: date, as_of: date) -> tuple[UnsettledLoss, ...]:
    found = [
        UnsettledLoss(
            lot.lot_id,
            lot.ticker,
            lot.quantity,
            lot.closed_date,
            cents(-lot.realized_pnl),
            lot.closed_date + WASH_WINDOW,
        )
        for lot in lots
        if lot.status == TaxLotStatus.CLOSED
        and lot.closed_date is not None
        and lot.closed_date.year == year_end.year
        and lot.closed_date > year_end - WASH_WINDOW
        and lot.closed_date + WASH_WINDOW >= as_of
        and lot.realized_pnl < 0
    ]
    return tuple(sorted(found, key=lambda u: (u.date_sold, u.ticker, u.lot_id)))


def build_tax_report(
    lots: Iterable[TaxLot], year: int, as_of: date, closes: Mapping[str, tuple[date, Decimal]]
) -> TaxReport:
    """The report of `year` from every lot piece on record, made on `as_of`. `closes` gives each
    ticker's last close on or before year end (its date and price), for the open lots' values."""
    if year > as_of.year:
        raise ValueError(f"the year {year} has not begun on {as_of}")
    lots = tuple(lots)
    year_end = min(date(year, 12, 31), as_of)
    sold = form_8949_rows(lots, year)
    short = tuple(r for r in sold if r.term == HoldingTerm.SHORT)
    long = tuple(r for r in sold if r.term == HoldingTerm.LONG)
    return TaxReport(
        year=year,
        as_of=as_of,
        year_end=year_end,
        short_term=short,
        long_term=long,
        short_totals=part_totals(HoldingTerm.SHORT, short),
        long_totals=part_totals(HoldingTerm.LONG, long),
        open_lots=open_lot_rows(lots, year_end, closes),
        pending_deferrals=pending_deferrals(lots, year_end),
        unsettled_losses=unsettled_losses(lots, year_end, as_of),
    )
