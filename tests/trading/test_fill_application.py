"""Applying a fill to a ticker's book (seed tasks 25.1–25.2, issue 13): the rule both the live
fill handler and the backtester's book call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import OrderSide
from services.trading.core.fill_application import (
    ATR_STEP,
    PRICE_STEP,
    Fill,
    PositionBook,
    StopPlan,
    apply_buy,
    apply_sell,
    unallocated_entry_fees,
)
from services.trading.core.models import ReservePoolState
from services.trading.core.reserve_pool import ReserveSettings

D = Decimal
MONDAY = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York
PLAN = StopPlan(D("2.5"), D("2"), D("2"), D("0.8"))
RESERVE = ReserveSettings()


def fill(quantity: int | str, price: str, fee: str = "0", day: int = 0, **ids: str) -> Fill:
    return Fill(D(quantity), D(price), D(fee), MONDAY + timedelta(days=day), **ids)


def bought(*fills: Fill, plan: StopPlan = PLAN) -> PositionBook:
    book = PositionBook("XYZ")
    for f in fills:
        book, _ = apply_buy(book, f, plan, recommendation_id=7)
    return book


# --- buys --------------------------------------------------------------------------------


def test_a_first_buy_opens_a_lot_and_places_the_levels_around_its_price() -> None:
    book, applied = apply_buy(PositionBook("XYZ"), fill(10, "100", "1.5"), PLAN, recommendation_id=7)
    assert applied.opened and not applied.stale_levels_retired and not applied.stop_plan_missing
    assert book.quantity == 10 and [lot.quantity for lot in applied.lots.changed] == [10]
    assert book.levels is not None
    assert (book.levels.stop_loss_price, book.levels.take_profit_price) == (D(95), D(110))
    assert (book.entry_price, book.entry_fees, book.opened_at, book.recommendation_id) == (
        D(100),
        D("1.5"),
        MONDAY,
        7,
    )


def test_stored_levels_and_atr_are_rounded_to_their_steps_and_the_entry_is_exact() -> None:
    plan = StopPlan(D("1.23456789"), D("1.5"), D("2"), D("0.5"))
    book, _ = apply_buy(PositionBook("XYZ"), fill(3, "100.00333333"), plan)
    assert book.levels is not None
    assert book.levels.atr_value == D("1.234568")
    assert book.levels.stop_loss_price == D("98.1515")  # 100.00333333 - 1.234568 * 1.5, rounded
    assert book.levels.take_profit_price == D("103.7070")
    assert book.entry_price == D("100.00333333")
    for value in (book.levels.stop_loss_price, book.levels.take_profit_price):
        assert value == value.quantize(PRICE_STEP)
    assert book.levels.atr_value == book.levels.atr_value.quantize(ATR_STEP)


def test_a_later_tranche_averages_the_entry_and_never_lowers_the_stop() -> None:
    book = bought(fill(10, "100", "1"))
    book, applied = apply_buy(book, fill(20, "90", "2", day=1), PLAN)
    assert not applied.opened
    assert book.entry_price == D(2800) / 30  # exact, to Decimal's precision
    assert book.levels is not None
    assert book.levels.stop_loss_price == D(95)  # the fresh stop (88.33) would be lower
    assert book.levels.take_profit_price == D("103.3333")
    assert (book.quantity, book.entry_fees, book.opened_at) == (D(30), D(3), MONDAY)


def test_levels_left_on_a_flat_book_are_retired_before_a_new_position() -> None:
    book = bought(fill(10, "100"))
    flat, _ = apply_sell(book, fill(10, "105", day=1), ReservePoolState(), RESERVE)
    stale = PositionBook("XYZ", flat.lots, book.levels, book.entry_price, D(0), MONDAY, 7)
    fresh, applied = apply_buy(stale, fill(5, "50", day=2), PLAN, recommendation_id=8)
    assert applied.opened and applied.stale_levels_retired
    assert fresh.levels is not None and fresh.levels.stop_loss_price == D(45)
    assert (fresh.entry_price, fresh.opened_at, fresh.recommendation_id) == (D(50), MONDAY + timedelta(2), 8)


def test_a_buy_without_a_stop_plan_records_the_lot_only() -> None:
    book, applied = apply_buy(PositionBook("XYZ"), fill(4, "20", "1"), None)
    assert applied.stop_plan_missing and not applied.opened
    assert (book.quantity, book.levels, book.entry_price, book.entry_fees) == (D(4), None, None, D(1))


# --- sells -------------------------------------------------------------------------------


def test_a_partial_sale_closes_at_the_average_entry_with_its_share_of_the_buy_fees() -> None:
    book = bought(fill(10, "100", "1"), fill(30, "104", "3"))
    reserve = ReservePoolState(D(50), D(50))
    after, applied = apply_sell(book, fill(10, "110", "0.5", day=2, client_order_id="c-1"), reserve, RESERVE)
    trade = applied.trade
    assert (trade.entry_price, trade.exit_price, trade.quantity) == (D(103), D(110), D(10))
    assert trade.fees == D("0.5") + D(4) * 10 / 40
    assert trade.pnl == D(70) - D("1.5")
    assert (trade.entry_at, trade.exit_at, trade.recommendation_id) == (MONDAY, MONDAY + timedelta(2), 7)
    assert not applied.flat and after.levels == book.levels and after.quantity == 30
    assert after.entry_fees == D(3)
    entry = applied.siphon.entry
    assert entry is not None and entry.amount == D("68.5") * D("0.20") and entry.reference_id == "c-1"
    assert applied.siphon.state.balance == D(50) + entry.amount


def test_the_sale_that_empties_the_position_carries_the_rest_of_the_fees_and_retires_the_levels() -> None:
    book = bought(fill(10, "100", "3"))
    book, _ = apply_sell(book, fill(3, "90", day=1), ReservePoolState(), RESERVE)
    after, applied = apply_sell(book, fill(7, "90", "1", day=2), ReservePoolState(), RESERVE)
    assert applied.flat and applied.trade.fees == D(1) + (D(3) - D(3) * 3 / 10)
    assert after == PositionBook("XYZ", after.lots)
    assert applied.siphon.entry is None  # a loss moves nothing into the reserve


def test_a_sale_of_shares_bought_without_a_plan_is_closed_at_their_lot_basis() -> None:
    book, _ = apply_buy(PositionBook("XYZ"), fill(4, "20"), None)
    _, applied = apply_sell(book, fill(4, "25", day=1), ReservePoolState(), RESERVE)
    assert (applied.trade.entry_price, applied.trade.entry_at) == (D(20), MONDAY + timedelta(1))


def test_a_loss_sold_and_bought_back_within_thirty_days_is_a_wash_sale() -> None:
    book = bought(fill(10, "100"))
    book, sold = apply_sell(book, fill(10, "90", day=1), ReservePoolState(), RESERVE)
    assert sold.wash_sales == ()
    _, rebought = apply_buy(book, fill(10, "91", day=5), PLAN)
    assert [w.quantity for w in rebought.lots.wash_sales] == [D(10)]


def test_the_commissions_reach_the_tax_lots_basis_and_amount_realized() -> None:
    """Issue 15 (IRS Pub. 550): the lot's basis includes the buy's commission and the
    sale's commission reduces what the lot realizes, so the lot and the trade agree."""
    book, applied = apply_buy(PositionBook("XYZ"), fill(10, "100", "2"), PLAN)
    (lot,) = applied.lots.changed
    assert (lot.cost_basis_per_share, lot.fees, lot.cost_basis) == (D(100), D(2), D(1002))
    _, sold = apply_sell(book, fill(10, "110", "1.25", day=1), ReservePoolState(), RESERVE)
    (closed,) = sold.lots.closed
    assert (closed.sale_fees, closed.proceeds) == (D("1.25"), D("1098.75"))
    assert closed.realized_pnl == sold.trade.pnl == D("96.75")


def test_selling_more_than_the_open_lots_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="only 10 held"):
        apply_sell(bought(fill(10, "100")), fill(11, "100", day=1), ReservePoolState(), RESERVE)


def test_the_unallocated_fees_replayed_from_the_fills_are_the_book_s_own() -> None:
    history = [(OrderSide.BUY, D(10), D(1)), (OrderSide.SELL, D(4), D(9)), (OrderSide.BUY, D(5), D(2))]
    assert unallocated_entry_fees(history) == D(1) - D(1) * 4 / 10 + D(2)
    assert unallocated_entry_fees([*history, (OrderSide.SELL, D(11), D(0))]) == 0


# --- the rule, stated independently --------------------------------------------------------

events = st.lists(
    st.tuples(
        st.booleans(),
        st.integers(1, 50),
        st.decimals(min_value=D(1), max_value=D(500), places=2),
        st.decimals(min_value=D(0), max_value=D(10), places=2),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_a_book_accounts_for_every_share_commission_and_dollar(fills) -> None:
    """After any sequence of buys and sells: the open lots hold what was bought less what was
    sold; every buy commission is carried by closed trades exactly once, pro rata, and the
    rest is still on the book; realised P&L less the open shares at their entry and the
    uncarried fees is the cash that moved; each profitable sale siphons exactly its profit times the share; and the fees the
    live engine replays from its fill history are the book's own."""
    book, reserve, history = PositionBook("XYZ"), ReservePoolState(), []
    bought_qty = sold_qty = cash = pnl = carried = bought_fees = sold_fees = siphoned = D(0)
    for day, (is_buy, quantity, price, fee) in enumerate(fills):
        at = MONDAY + timedelta(days=day)
        held = bought_qty - sold_qty
        if is_buy or held == 0:
            plan = StopPlan(min(price / 4, D("0.5")), D(1), D(2), D("0.5"))
            book, _ = apply_buy(book, Fill(D(quantity), price, fee, at), plan)
            bought_qty, cash, bought_fees = (
                bought_qty + quantity,
                cash - quantity * price - fee,
                bought_fees + fee,
            )
            history.append((OrderSide.BUY, D(quantity), fee))
        else:
            sold = min(D(quantity), held)
            book, applied = apply_sell(book, Fill(sold, price, fee, at), reserve, RESERVE)
            trade = applied.trade
            sold_qty, cash, sold_fees = sold_qty + sold, cash + sold * price - fee, sold_fees + fee
            pnl, carried = pnl + trade.pnl, carried + trade.fees
            amount = applied.siphon.entry.amount if applied.siphon.entry else D(0)
            assert amount == max(D(0), trade.pnl) * RESERVE.reserve_siphon_pct
            siphoned += amount
            reserve = applied.siphon.state
            history.append((OrderSide.SELL, sold, fee))
        assert book.quantity == bought_qty - sold_qty
        assert unallocated_entry_fees(history) == book.entry_fees
    tiny = D("1e-15")  # pro-rata shares and averaged entries are divisions at 28 digits
    assert abs(carried - sold_fees + book.entry_fees - bought_fees) < tiny
    if book.quantity == 0:
        assert book.entry_fees == 0 and book.levels is None
    open_at_entry = book.quantity * (book.entry_price or D(0))
    assert abs(pnl - open_at_entry - book.entry_fees - cash) < tiny
    assert reserve.balance == siphoned
