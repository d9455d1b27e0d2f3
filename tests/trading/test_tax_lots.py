"""Tax lots: FIFO closing, wash sales, fees in the basis and the holding term (seed tasks
11.2-11.4, issue 15, docs/contracts.md section 6, IRS Publication 550)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from services.shared.schemas import TaxLotStatus
from services.trading.core.tax_lots import HoldingTerm, TaxLotBook, close_lots_fifo, record_entry

D0 = date(2025, 1, 1)
D = Decimal


# --- an independent share-by-share model of the rule -------------------------------------


@dataclass
class Share:
    acquired: date
    buy_no: int  # which purchase it came from
    position: int  # its place within that purchase
    basis: Decimal
    holding_start: date
    absorbed: bool = False


@dataclass
class LossShare:
    sale_date: date
    order: int  # global order of sale
    origin: int
    loss: Decimal  # positive
    holding_start: date
    washed: bool = False


@dataclass
class Model:
    """Tracks every share on its own; after each event, matches every unwashed loss share
    (in the order sold) to the first eligible held share (in acquisition order). A share's
    basis is its price plus its fee; a sold share realizes its price less its fee."""

    held: list[Share] = field(default_factory=list)
    losses: list[LossShare] = field(default_factory=list)
    sold_count: int = 0
    buys: int = 0
    disallowed: Decimal = D(0)
    sales: list[list[tuple[date, Decimal, Decimal]]] = field(default_factory=list)  # (acquired, basis, exit)

    def buy(self, day: date, qty: int, price: Decimal, fee_per_share: Decimal = D(0)) -> None:
        self.buys += 1
        self.held += [Share(day, self.buys, i, price + fee_per_share, day) for i in range(qty)]
        self.match()

    def sell(self, day: date, qty: int, price: Decimal, fee_per_share: Decimal = D(0)) -> None:
        self.held.sort(key=lambda s: (s.acquired, s.buy_no, s.position))
        sold, self.held = self.held[:qty], self.held[qty:]
        realized = price - fee_per_share
        self.sales.append([(s.acquired, s.basis, realized) for s in sold])
        for s in sold:
            self.sold_count += 1
            if realized < s.basis:
                self.losses.append(
                    LossShare(day, self.sold_count, s.buy_no, s.basis - realized, s.holding_start)
                )
        self.match()

    def match(self) -> None:
        self.held.sort(key=lambda s: (s.acquired, s.buy_no, s.position))
        for loss in sorted(self.losses, key=lambda l: l.order):
            if loss.washed:
                continue
            for share in self.held:
                if (
                    not share.absorbed
                    and share.buy_no != loss.origin
                    and abs((share.acquired - loss.sale_date).days) <= 30
                ):
                    share.absorbed = True
                    share.basis += loss.loss
                    share.holding_start = share.acquired - (loss.sale_date - loss.holding_start)
                    loss.washed = True
                    self.disallowed += loss.loss
                    break


def expand(lots) -> list[tuple[date, Decimal, date]]:
    """Open lots as one (acquired, basis, holding start) row per share, in FIFO order."""
    rows = []
    for lot in sorted(lots, key=lambda lot: lot.fifo_key):
        rows += [(lot.acquisition_date, lot.cost_basis / lot.quantity, lot.holding_period_start)] * int(
            lot.quantity
        )
    return rows


# Fees are whole cents per share here, so every share of a fill carries the same fee and the
# share-by-share model needs no rounding (uneven fees have their own properties below).
events = st.lists(
    st.tuples(
        st.integers(0, 20),  # days after the previous event
        st.booleans(),  # buy?
        st.integers(1, 6),  # quantity
        st.integers(5, 15),  # price in dollars
        st.sampled_from([0, 0, 1, 7, 60]),  # fee in cents per share
    ),
    min_size=1,
    max_size=14,
)


def replay(script):
    book, model, day = TaxLotBook(), Model(), D0
    sales = []
    for gap, is_buy, qty, price, cents in script:
        day += timedelta(days=gap)
        per_share = D(cents) / 100
        if is_buy:
            book = record_entry(
                book, ticker="XYZ", quantity=D(qty), price=D(price), trade_date=day, fee=per_share * qty
            ).book
            model.buy(day, qty, D(price), per_share)
            continue
        qty = min(qty, int(book.open_quantity("XYZ")))
        if qty == 0:
            continue
        update = close_lots_fifo(
            book, ticker="XYZ", quantity=D(qty), price=D(price), trade_date=day, fee=per_share * qty
        )
        book = update.book
        sales.append(update)
        model.sell(day, qty, D(price), per_share)
    return book, model, sales


@settings(max_examples=150, deadline=None)
@given(events)
def test_property_22_fifo_closes_earliest_lots_and_realizes_per_lot(script):
    """Property 22: a sale closes the earliest-acquired shares first, and each closed lot
    realizes, share by share, the price less the selling fee minus the price and fee paid."""
    book, model, sales = replay(script)
    assert len(sales) == len(model.sales)
    for update, expected in zip(sales, model.sales):
        got = []
        for lot in sorted(update.closed, key=lambda lot: lot.fifo_key):
            per_share = (lot.cost_basis / lot.quantity, lot.proceeds / lot.quantity)
            assert lot.realized_pnl == (per_share[1] - per_share[0]) * lot.quantity
            got += [(lot.acquisition_date, *per_share)] * int(lot.quantity)
        assert got == expected
    assert expand(book.open_lots("XYZ")) == [(s.acquired, s.basis, s.holding_start) for s in model.held]


@settings(max_examples=150, deadline=None)
@given(events)
def test_property_23_wash_sales_match_share_by_share_model(script):
    """Property 23: a loss sale is washed, share for share, by shares bought within 30 days
    before or after it (not the sold shares, not the same purchase, one washed share each);
    the disallowed loss moves into their basis and the rest stays realized."""
    book, model, _ = replay(script)
    washed = [lot for lot in book.lots if lot.status == TaxLotStatus.WASHED]
    assert sum((lot.disallowed_loss for lot in washed), D(0)) == model.disallowed
    assert sum(int(lot.quantity) for lot in washed) == sum(1 for loss in model.losses if loss.washed)
    for lot in washed:
        wash = lot.wash_sale
        assert lot.realized_pnl < 0 and wash.disallowed_loss == -lot.realized_pnl
        replacement = book.lot(wash.replacement_lot_id)
        assert abs((replacement.acquisition_date - wash.sale_date).days) <= 30
        assert replacement.origin_lot_id != lot.origin_lot_id
    # Conservation: every dollar paid (price and fees) and every dollar of disallowed loss
    # reappears as basis on some share.
    bought = sum((D(price) + D(cents) / 100) * qty for _, is_buy, qty, price, cents in script if is_buy)
    basis_now = sum((lot.cost_basis for lot in book.lots), D(0))
    assert basis_now == bought + model.disallowed


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 60),  # loss sale day
    st.integers(0, 120),  # other purchase day
    st.integers(1, 8),
    st.integers(1, 8),
)
def test_property_23_flag_iff_purchase_within_30_days(sale_day, other_day, sold, other_qty):
    """Property 23: with one loss sale, it is flagged exactly when another purchase of the
    ticker falls within 30 calendar days before or after the sale date."""
    book = record_entry(TaxLotBook(), ticker="XYZ", quantity=D(sold), price=D(100), trade_date=D0).book
    events = [("sell", sale_day), ("buy", other_day)]
    events.sort(key=lambda e: (e[1], e[0] == "sell"))  # same day: the buy comes first
    for kind, day in events:
        when = D0 + timedelta(days=day)
        if kind == "buy":
            book = record_entry(book, ticker="XYZ", quantity=D(other_qty), price=D(95), trade_date=when).book
        else:
            book = close_lots_fifo(book, ticker="XYZ", quantity=D(sold), price=D(90), trade_date=when).book
    washed = [lot for lot in book.lots if lot.wash_sale_flag]
    if abs(other_day - sale_day) <= 30:
        assert sum(lot.quantity for lot in washed) == min(sold, other_qty)
        assert sum(lot.disallowed_loss for lot in washed) == D(10) * min(sold, other_qty)
    else:
        assert washed == []
    recognized = sum((lot.recognized_pnl for lot in book.lots if not lot.is_open), D(0))
    assert recognized == D(-10) * (sold - (min(sold, other_qty) if abs(other_day - sale_day) <= 30 else 0))


uneven_fees = st.lists(
    st.tuples(
        st.integers(0, 40),  # days after the previous event
        st.booleans(),  # buy?
        st.integers(1, 7),  # quantity
        st.integers(5, 15),  # price in dollars
        st.integers(0, 997),  # the whole fill's fee in cents: rarely a multiple of the quantity
    ),
    min_size=1,
    max_size=16,
)


@settings(max_examples=200, deadline=None)
@given(uneven_fees)
def test_fees_are_in_the_basis_and_reduce_the_amount_realized(script):
    """IRS Pub. 550: basis includes the commissions and fees of buying, selling costs reduce
    the amount realized. Stated on the account's cash, whatever the split and washing: the
    cash the trades moved (sales net of their fees less buys with their fees) is exactly the
    recognized gain of every sold share less the basis still held (a washed loss is not
    recognized, but sits in a held or later-sold share's basis)."""
    book, day, cash, sale_fees = TaxLotBook(), D0, D(0), []
    bought_fees, moved = D(0), D(0)
    for gap, is_buy, qty, price, cents in script:
        day += timedelta(days=gap)
        fee = D(cents) / 100
        if is_buy:
            update = record_entry(
                book, ticker="XYZ", quantity=D(qty), price=D(price), trade_date=day, fee=fee
            )
            book, moved = update.book, moved + sum((w.disallowed_fees for w in update.wash_sales), D(0))
            cash -= D(price) * qty + fee
            bought_fees += fee
            continue
        qty = min(qty, int(book.open_quantity("XYZ")))
        if qty == 0:
            continue
        update = close_lots_fifo(book, ticker="XYZ", quantity=D(qty), price=D(price), trade_date=day, fee=fee)
        book, moved = update.book, moved + sum((w.disallowed_fees for w in update.wash_sales), D(0))
        cash += D(price) * qty - fee
        sale_fees.append((fee, sum((lot.sale_fees for lot in update.closed), D(0))))
    sold = [lot for lot in book.lots if not lot.is_open]
    held = [lot for lot in book.lots if lot.is_open]
    recognized = sum((lot.recognized_pnl for lot in sold), D(0))
    assert recognized - sum((lot.cost_basis for lot in held), D(0)) == cash
    # Each sale's fee is shared out among the pieces it closed, to the cent and beyond.
    assert all(fee == shared for fee, shared in sale_fees)
    # Every buy fee is in some piece's fees, beside the fee part of the losses washed into them.
    assert sum((lot.fees for lot in book.lots), D(0)) == bought_fees + moved
    assert all(lot.fees >= 0 and lot.sale_fees >= 0 for lot in book.lots)


def long_term_by_calendar(start: date, sold: date) -> bool:
    """Held more than one year: the sale falls after the same month and day a year on (a
    29 February start compares as (year + 1, 2, 29), so it is long from 1 March)."""
    return (sold.year, sold.month, sold.day) > (start.year + 1, start.month, start.day)


@settings(max_examples=300, deadline=None)
@given(
    st.dates(date(2019, 1, 1), date(2026, 12, 31)),
    st.one_of(st.integers(0, 800), st.integers(364, 367)),  # the anniversary is where it turns
)
@example(date(2024, 2, 29), 365)  # 2025-02-28: a year, not more
@example(date(2024, 2, 29), 366)  # 2025-03-01: more than a year
@example(date(2023, 3, 15), 366)  # 2024-03-15 (leap year between): the anniversary itself
@example(date(2023, 3, 15), 367)
def test_term_is_long_after_more_than_one_year(bought_on, held_days):
    sold_on = bought_on + timedelta(days=held_days)
    book = record_entry(TaxLotBook(), ticker="XYZ", quantity=D(3), price=D(10), trade_date=bought_on).book
    update = close_lots_fifo(book, ticker="XYZ", quantity=D(2), price=D(11), trade_date=sold_on)
    (piece,) = update.closed
    expected = HoldingTerm.LONG if long_term_by_calendar(bought_on, sold_on) else HoldingTerm.SHORT
    assert piece.term is expected
    assert all(lot.term is None for lot in update.book.open_lots("XYZ"))


@settings(max_examples=300, deadline=None)
@given(
    st.dates(date(2019, 1, 1), date(2024, 12, 31)),
    st.integers(0, 500),  # days the loss shares were held
    st.integers(-30, 30),  # replacement bought this many days from the loss sale
    st.one_of(st.integers(0, 500), st.integers(330, 370)),  # the replacement's sale, days on
)
def test_a_replacement_counts_the_washed_shares_holding_period(bought_on, held, offset, later):
    """Pub. 550: the replacement's holding period includes the sold shares'. Its term is the
    calendar rule applied to the days both were held, ending on the replacement's sale."""
    assume(offset >= -held)  # a replacement bought before the first shares would be sold first
    loss_sale = bought_on + timedelta(days=held)
    replaced_on = loss_sale + timedelta(days=offset)
    events = [("sell", loss_sale), ("buy", replaced_on)]
    events.sort(key=lambda e: (e[1], e[0] == "sell"))
    book = record_entry(TaxLotBook(), ticker="XYZ", quantity=D(5), price=D(50), trade_date=bought_on).book
    for kind, day in events:
        if kind == "buy":
            book = record_entry(book, ticker="XYZ", quantity=D(5), price=D(45), trade_date=day).book
        else:
            book = close_lots_fifo(book, ticker="XYZ", quantity=D(5), price=D(40), trade_date=day).book
    final_sale = max(loss_sale, replaced_on) + timedelta(days=later)
    update = close_lots_fifo(book, ticker="XYZ", quantity=D(5), price=D(60), trade_date=final_sale)
    (piece,) = update.closed
    # The first shares were held from bought_on to loss_sale; the replacement from replaced_on
    # on. Together: a holding that began `held` days before the replacement was bought.
    start = replaced_on - timedelta(days=held)
    assert piece.wash_sale is None and piece.basis_adjustment is not None
    assert piece.term is (HoldingTerm.LONG if long_term_by_calendar(start, final_sale) else HoldingTerm.SHORT)


# --- examples ----------------------------------------------------------------------------


def buy(book, qty, price, day, ticker="XYZ"):
    return record_entry(
        book, ticker=ticker, quantity=D(qty), price=D(price), trade_date=D0 + timedelta(days=day)
    )


def sell(book, qty, price, day, ticker="XYZ"):
    return close_lots_fifo(
        book, ticker=ticker, quantity=D(qty), price=D(price), trade_date=D0 + timedelta(days=day)
    )


def test_sale_spanning_three_lots():
    book = buy(TaxLotBook(), 10, "10.00", 0).book
    book = buy(book, 5, "12.50", 1).book
    book = buy(book, 8, "11.00", 2).book
    update = sell(book, 20, "13.00", 40)
    assert [(lot.acquisition_date.day, lot.quantity, lot.realized_pnl) for lot in update.closed] == [
        (1, D(10), D("30.00")),
        (2, D(5), D("2.50")),
        (3, D(5), D("10.00")),
    ]
    assert update.realized_pnl == D("42.50")
    (rest,) = update.book.open_lots("XYZ")
    assert (rest.quantity, rest.cost_basis_per_share, rest.acquisition_date.day) == (D(3), D("11.00"), 3)
    assert update.wash_sales == ()


def test_wash_sale_replacement_bought_before_the_loss_sale():
    book = buy(TaxLotBook(), 10, 50, 0).book  # lot 1, to be sold at a loss
    book = buy(book, 10, 45, 20).book  # lot 2, the replacement (20 days before the sale)
    update = sell(book, 10, 40, 40)
    (washed,) = update.closed
    assert washed.status == TaxLotStatus.WASHED and washed.disallowed_loss == D(100)
    assert washed.recognized_pnl == 0
    (replacement,) = update.book.open_lots("XYZ")
    assert replacement.cost_basis_per_share == D(55)  # 45 + the 10/share disallowed
    # Held the sold shares 40 days; the replacement's holding period starts 40 days earlier.
    assert replacement.holding_period_start == D0 + timedelta(days=20 - 40)
    assert replacement.acquisition_date == D0 + timedelta(days=20)
    assert "disallowed" in washed.wash_sale.describe()


def test_wash_sale_replacement_bought_after_the_loss_sale():
    book = buy(TaxLotBook(), 10, 50, 0).book
    sale = sell(book, 10, 40, 10)
    assert sale.wash_sales == () and sale.realized_pnl == D(-100)
    later = buy(sale.book, 10, 42, 40)  # 30 days after: still inside the window
    (wash,) = later.wash_sales
    assert wash.disallowed_loss == D(100) and wash.quantity == D(10)
    (replacement,) = later.book.open_lots("XYZ")
    assert replacement.cost_basis_per_share == D(52)
    assert replacement.holding_period_start == D0 + timedelta(days=40 - 10)
    assert later.book.lot(wash.sale_lot_id).status == TaxLotStatus.WASHED
    too_late = buy(sell(buy(TaxLotBook(), 10, 50, 0).book, 10, 40, 10).book, 10, 42, 41)
    assert too_late.wash_sales == ()


def test_partial_wash_fewer_replacement_shares_than_sold():
    book = buy(TaxLotBook(), 10, 50, 0).book
    book = sell(book, 10, 40, 35).book
    update = buy(book, 4, 41, 50)
    (wash,) = update.wash_sales
    assert wash.quantity == D(4) and wash.disallowed_loss == D(40)
    closed = [lot for lot in update.book.lots if not lot.is_open]
    washed = [lot for lot in closed if lot.status == TaxLotStatus.WASHED]
    realized = [lot for lot in closed if lot.status == TaxLotStatus.CLOSED]
    assert [lot.quantity for lot in washed] == [D(4)] and [lot.quantity for lot in realized] == [D(6)]
    assert sum(lot.recognized_pnl for lot in closed) == D(-60)  # the rest of the loss stays realized
    (replacement,) = update.book.open_lots("XYZ")
    assert replacement.cost_basis_per_share == D(51)
    # A second purchase still inside the window washes the remaining six, and no more.
    second = buy(update.book, 10, 41, 60)
    assert sum(w.quantity for w in second.wash_sales) == D(6)
    assert [lot.basis_adjustment is not None for lot in second.book.open_lots("XYZ")] == [True, True, False]


def test_each_replacement_share_absorbs_one_washed_share_only():
    book = buy(TaxLotBook(), 5, 50, 0).book
    book = buy(book, 5, 50, 1).book
    book = buy(book, 5, 44, 5).book  # replacement for at most 5 washed shares
    update = sell(book, 10, 40, 10)  # 10 loss shares; lot 3 can absorb 5
    assert sum(w.quantity for w in update.wash_sales) == D(5)
    assert update.disallowed_loss == D(50)
    assert update.realized_pnl == D(-100)


def test_rest_of_the_same_purchase_is_not_a_replacement():
    """Rev. Rul. 56-602: selling part of one purchase at a loss is not a wash sale just
    because the rest of that purchase is still held."""
    book = buy(TaxLotBook(), 10, 50, 0).book
    update = sell(book, 4, 40, 5)
    assert update.wash_sales == () and update.realized_pnl == D(-40)


def test_gains_are_never_washed_and_tickers_are_separate():
    book = buy(TaxLotBook(), 10, 50, 0).book
    book = buy(book, 10, 50, 1, ticker="ABC").book
    update = sell(book, 10, 60, 5)
    assert update.wash_sales == () and update.realized_pnl == D(100)
    update = sell(buy(update.book, 10, 50, 6).book, 10, 40, 7, ticker="ABC")
    assert update.wash_sales == ()  # XYZ purchases do not replace ABC


def test_refuses_impossible_input():
    book = buy(TaxLotBook(), 10, 50, 5).book
    with pytest.raises(ValueError, match="only 10 held"):
        sell(book, 11, 40, 6)
    with pytest.raises(ValueError, match="before the last recorded trade"):
        buy(book, 1, 40, 4)
    with pytest.raises(ValueError, match="positive"):
        buy(book, 0, 40, 6)


def test_commissions_are_in_the_basis_and_selling_costs_reduce_the_amount_realized():
    """Pub. 550's example shape: 10 shares at $10 with a $5 commission cost $105; sold for $13
    with $3 in commission and fees they realize $127, a gain of $22."""
    book = record_entry(TaxLotBook(), ticker="XYZ", quantity=D(10), price=D(10), trade_date=D0, fee=D(5)).book
    (lot,) = book.open_lots("XYZ")
    assert lot.cost_basis == D(105)
    update = close_lots_fifo(book, ticker="XYZ", quantity=D(10), price=D(13), trade_date=D0, fee=D(3))
    (piece,) = update.closed
    assert (piece.proceeds, piece.realized_pnl, update.realized_pnl) == (D(127), D(22), D(22))
    assert piece.term is HoldingTerm.SHORT


def test_a_sale_at_the_purchase_price_is_a_loss_by_the_fees_and_can_be_washed():
    book = record_entry(TaxLotBook(), ticker="XYZ", quantity=D(4), price=D(20), trade_date=D0, fee=D(2)).book
    sale = close_lots_fifo(
        book, ticker="XYZ", quantity=D(4), price=D(20), trade_date=D0 + timedelta(days=3), fee=D(1)
    )
    assert sale.realized_pnl == D(-3)
    later = record_entry(
        sale.book, ticker="XYZ", quantity=D(4), price=D(21), trade_date=D0 + timedelta(days=10), fee=D(2)
    )
    (wash,) = later.wash_sales
    assert (wash.disallowed_loss, wash.disallowed_fees) == (D(3), D(3))
    (replacement,) = later.book.open_lots("XYZ")
    # Price basis stays what was paid; the washed fees join the replacement's own.
    assert (replacement.cost_basis_per_share, replacement.fees, replacement.cost_basis) == (
        D(21),
        D(5),
        D(89),
    )


def test_split_lots_share_their_fees_and_keep_the_total():
    book = record_entry(TaxLotBook(), ticker="XYZ", quantity=D(3), price=D(10), trade_date=D0, fee=D(1)).book
    update = close_lots_fifo(book, ticker="XYZ", quantity=D(1), price=D(12), trade_date=D0, fee=D("0.5"))
    (piece,) = update.closed
    (rest,) = update.book.open_lots("XYZ")
    assert piece.fees == D("0.3333333333") and rest.fees == D("0.6666666667")
    assert piece.realized_pnl == D(12) - D("0.5") - D(10) - D("0.3333333333")


def test_refuses_a_negative_fee():
    with pytest.raises(ValueError, match="fee must not be negative"):
        record_entry(TaxLotBook(), ticker="XYZ", quantity=D(1), price=D(1), trade_date=D0, fee=D(-1))
