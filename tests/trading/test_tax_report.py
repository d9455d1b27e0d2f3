"""The year's tax report (issue 17): Form 8949 rows, Schedule D totals, open lots at year end,
pending wash-sale deferrals. Figures in the examples are worked out by hand in the comments."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.tax_lots import HoldingTerm, TaxLotBook, close_lots_fifo, record_entry
from services.trading.core.tax_report import build_tax_report

D = Decimal


class Book:
    """Trades in date order, on one lot book."""

    def __init__(self) -> None:
        self.book = TaxLotBook()

    def buy(self, ticker: str, qty: int, price: str, day: date, fee: str = "0") -> Book:
        self.book = record_entry(
            self.book, ticker=ticker, quantity=D(qty), price=D(price), trade_date=day, fee=D(fee)
        ).book
        return self

    def sell(self, ticker: str, qty: int, price: str, day: date, fee: str = "0") -> Book:
        self.book = close_lots_fifo(
            self.book, ticker=ticker, quantity=D(qty), price=D(price), trade_date=day, fee=D(fee)
        ).book
        return self


def year_2024() -> Book:
    return (
        Book()
        .buy("ABC", 5, "100", date(2023, 1, 10))
        # ABC: held more than a year: long term, proceeds 600 - 1 = 599, basis 500, gain 99.
        .sell("ABC", 5, "120", date(2024, 2, 1), fee="1")
        # XYZ: 10 bought at 50 with a $1 fee (basis 501), sold at 45 with a $1 fee (proceeds
        # 449): a $52 loss, washed by the 10 bought 17 days later at 46 (basis 460 + 52 = 512,
        # holding period from 20 June less the 94 days held = 18 March).
        .buy("XYZ", 10, "50", date(2024, 3, 1), fee="1")
        .sell("XYZ", 10, "45", date(2024, 6, 3), fee="1")
        .buy("XYZ", 10, "46", date(2024, 6, 20))
        # 4 of the replacement shares sold at 55: proceeds 220, basis 512 * 4/10 = 204.80.
        .sell("XYZ", 4, "55", date(2024, 9, 3))
        # QQQ: 3 bought at 30, sold at 25 on 20 December: a $15 loss, no purchase (yet).
        .buy("QQQ", 3, "30", date(2024, 11, 1))
        .sell("QQQ", 3, "25", date(2024, 12, 20))
    )


def test_hand_checked_year():
    report = build_tax_report(
        year_2024().book.lots, 2024, date(2024, 12, 31), {"XYZ": (date(2024, 12, 31), D("50"))}
    )
    short = [(r.description, r.date_acquired, r.date_sold, r.proceeds, r.cost_basis, r.code, r.adjustment, r.gain)
             for r in report.short_term]  # fmt: skip
    assert short == [
        (
            "10 sh. XYZ",
            date(2024, 3, 1),
            date(2024, 6, 3),
            D("449.00"),
            D("501.00"),
            "W",
            D("52.00"),
            D("0.00"),
        ),
        ("4 sh. XYZ", date(2024, 6, 20), date(2024, 9, 3), D("220.00"), D("204.80"), "", D("0"), D("15.20")),
        ("3 sh. QQQ", date(2024, 11, 1), date(2024, 12, 20), D("75.00"), D("90.00"), "", D("0"), D("-15.00")),
    ]
    assert report.short_term[1].holding_period_start == date(2024, 3, 18)
    [long] = report.long_term
    assert (long.description, long.proceeds, long.cost_basis, long.gain) == ("5 sh. ABC", 599, 500, 99)
    t = report.short_totals
    assert (t.rows, t.proceeds, t.cost_basis, t.adjustment, t.gain) == (
        3,
        D("744"),
        D("795.80"),
        52,
        D("0.20"),
    )
    assert (report.long_totals.gain, report.net_gain) == (99, D("99.20"))
    # The 6 XYZ still held carry 6/10 of the $52: basis 512 * 6/10 = 307.20, of it 31.20
    # deferred; at 50 they are worth 300, 7.20 under their basis.
    [held] = report.open_lots
    assert (held.quantity, held.adjusted_basis, held.deferred_loss) == (6, D("307.20"), D("31.20"))
    assert (held.market_value, held.unrealized_gain, held.term_if_sold) == (
        300,
        D("-7.20"),
        HoldingTerm.SHORT,
    )
    [deferral] = report.pending_deferrals
    assert (deferral.ticker, deferral.quantity, deferral.amount) == ("XYZ", 6, D("31.20"))
    # Made on 31 December, the QQQ loss can still be washed by a buy up to 19 January.
    [unsettled] = report.unsettled_losses
    assert (unsettled.ticker, unsettled.loss, unsettled.window_ends) == ("QQQ", 15, date(2025, 1, 19))


def test_the_year_as_it_stood_at_its_end_when_made_later():
    # In January QQQ is bought back (washing December's $15 loss) and a ZZZ loss is washed
    # into shares bought in December: the 2024 report, made in February, shows the QQQ row
    # washed and its $15 pending (carried by shares bought after year end), and the December
    # ZZZ shares at their basis of year end (200, not 225).
    book = (
        year_2024()
        .buy("ZZZ", 5, "30", date(2024, 12, 23))
        .buy("ZZZ", 10, "20", date(2024, 12, 27))
        .buy("QQQ", 3, "26", date(2025, 1, 10))
        .sell("ZZZ", 5, "25", date(2025, 1, 15))
    )
    report = build_tax_report(book.book.lots, 2024, date(2025, 2, 15), {})
    qqq = next(r for r in report.short_term if r.ticker == "QQQ")
    assert (qqq.code, qqq.adjustment, qqq.gain) == ("W", 15, 0)
    assert report.short_totals.gain == D("15.20")
    assert {(d.ticker, d.quantity, d.amount) for d in report.pending_deferrals} == {
        ("XYZ", 6, D("31.20")),
        ("QQQ", 3, D("15.00")),
    }
    zzz = [
        (r.quantity, r.adjusted_basis, r.holding_period_start, r.price)
        for r in report.open_lots
        if r.ticker == "ZZZ"
    ]
    assert zzz == [(5, 150, date(2024, 12, 23), None), (10, 200, date(2024, 12, 27), None)]
    assert report.unsettled_losses == ()
    # The next year, so far, sees the ZZZ wash: its loss row, and the 5 of the 10 that absorbed
    # it pending beside the XYZ and QQQ deferrals still held.
    later = build_tax_report(book.book.lots, 2025, date(2025, 2, 15), {})
    assert later.year_end == date(2025, 2, 15)
    assert [(r.ticker, r.code, r.adjustment) for r in later.short_term] == [("ZZZ", "W", 25)]
    assert [(d.ticker, d.quantity, d.amount) for d in later.pending_deferrals] == [
        ("XYZ", 6, D("31.20")),
        ("QQQ", 3, 15),
        ("ZZZ", 5, 25),
    ]
    assert [
        (r.ticker, r.quantity, r.adjusted_basis, r.deferred_loss)
        for r in later.open_lots
        if r.ticker == "ZZZ"
    ] == [
        ("ZZZ", 5, 100, 0),  # the rest of the purchase keeps its lot id, the lower
        ("ZZZ", 5, 125, 25),
    ]


def test_a_year_not_yet_begun_is_refused():
    with pytest.raises(ValueError, match="not begun"):
        build_tax_report((), 2026, date(2025, 6, 1), {})


# --- properties ------------------------------------------------------------------------------

script = st.lists(
    st.tuples(
        st.integers(0, 90),  # days after the previous trade
        st.sampled_from(["AAA", "BBB"]),
        st.booleans(),  # buy?
        st.integers(1, 9),  # quantity
        st.integers(500, 1500),  # price in cents
        st.integers(0, 333),  # the fill's fee in cents
    ),
    min_size=1,
    max_size=25,
)


def replay(trades):
    """Trades from 2021 on; at the end everything still held is sold. Returns the book and
    the cash each sale brought and each buy cost (fees in), by ticker."""
    book, day, cash = Book(), date(2021, 1, 4), D(0)
    for gap, ticker, is_buy, qty, price, fee in trades:
        day += timedelta(days=gap)
        amount, fee_d = D(price) / 100 * qty, D(fee) / 100
        if is_buy:
            book.buy(ticker, qty, str(D(price) / 100), day, str(fee_d))
            cash -= amount + fee_d
            continue
        qty = min(qty, int(book.book.open_quantity(ticker)))
        if qty:
            book.sell(ticker, qty, str(D(price) / 100), day, str(fee_d))
            cash += D(price) / 100 * qty - fee_d
    day += timedelta(days=1)
    for ticker in ("AAA", "BBB"):
        held = book.book.open_quantity(ticker)
        if held:
            book.sell(ticker, int(held), "10", day)
            cash += 10 * held
    return book.book.lots, day, cash


@settings(max_examples=80, deadline=None)
@given(script)
def test_rows_add_up_and_the_years_recognise_the_whole_cash_gain(trades):
    lots, last_day, cash = replay(trades)
    years = range(2021, last_day.year + 1)
    reports = [build_tax_report(lots, y, last_day + timedelta(days=40), {}) for y in years]
    gains = D(0)
    for report in reports:
        for part, totals in (
            (report.short_term, report.short_totals),
            (report.long_term, report.long_totals),
        ):
            assert totals.rows == len(part)
            assert totals.proceeds == sum(r.proceeds for r in part)
            assert totals.cost_basis == sum(r.cost_basis for r in part)
            assert totals.adjustment == sum(r.adjustment for r in part)
            assert totals.gain == sum(r.gain for r in part)
            for row in part:
                assert row.gain == row.proceeds - row.cost_basis + row.adjustment
                assert row.code == "W" or row.adjustment == 0
                assert row.adjustment >= 0 and row.date_sold.year == report.year
                held_more_than_a_year = (
                    row.date_sold > row.holding_period_start.replace(year=row.holding_period_start.year + 1)
                    if (row.holding_period_start.month, row.holding_period_start.day) != (2, 29)
                    else (row.date_sold >= date(row.holding_period_start.year + 1, 3, 1))
                )
                assert row.term == (HoldingTerm.LONG if held_more_than_a_year else HoldingTerm.SHORT)
        gains += report.net_gain
        assert report.open_lots == () or report.year < last_day.year
    # Everything bought was sold in the end, so no deferral is left and the years together
    # recognise exactly what the cash says (to a cent per row of rounding).
    assert reports[-1].pending_deferrals == ()
    rows = sum(len(r.rows) for r in reports)
    assert abs(gains - cash) <= D("0.01") * rows
    # Every share sold has exactly one row: the quantities by ticker match the sells.
    sold = sum(r.quantity for report in reports for r in report.rows)
    bought = sum(q for _, _, is_buy, q, _, _ in trades if is_buy)
    assert sold == bought


def test_tranches_bought_and_sold_together_make_one_row():
    # Two purchases the same day (4 at 10.00, 3 at 10.10, $0.35 fee), sold together at 12 with
    # a $0.70 fee: one row of 7 shares, proceeds 84 - 0.70 = 83.30, basis 40 + 30.30 + 0.35 = 70.65.
    book = (
        Book()
        .buy("AAA", 4, "10", date(2024, 5, 1))
        .buy("AAA", 3, "10.10", date(2024, 5, 1), fee="0.35")
        .sell("AAA", 7, "12", date(2024, 5, 9), fee="0.70")
    )
    [row] = build_tax_report(book.book.lots, 2024, date(2025, 1, 1), {}).rows
    assert (row.description, row.proceeds, row.cost_basis, row.gain) == (
        "7 sh. AAA",
        D("83.30"),
        D("70.65"),
        D("12.65"),
    )
    assert len(row.lot_ids) == 2
