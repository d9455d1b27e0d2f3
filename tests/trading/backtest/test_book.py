"""The simulated account applies fills by the core's rule (`core/fill_application.py`), so what
it stores is what the live fill handler would store (issue 13)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from services.trading.backtest.book import Book, StopPlan
from services.trading.backtest.config import CommissionModel, FillModel
from services.trading.backtest.market import to_decimal
from services.trading.core.fill_application import ATR_STEP, PRICE_STEP
from services.trading.core.reserve_pool import ReserveSettings

D = Decimal
OPEN = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)


def test_a_simulated_fill_stores_its_levels_on_the_steps_the_live_engine_stores() -> None:
    book = Book(D(100_000), FillModel(slippage_bps=D(7)), ReserveSettings())
    plan = StopPlan(D("1.23456789"), D("1.5"), D("2"), D("0.5"))
    refused = book.buy("XYZ", 0, "Tech", D(10), D("100.01"), OPEN, OPEN.date(), plan, uuid.uuid4(), 1)
    assert refused is None
    held = book.holdings["XYZ"]
    # The open plus slippage, rounded half up to the broker's price step as the paper broker fills.
    filled_at = (D("100.01") * (1 + D(7) / 10_000)).quantize(D("0.0001"), ROUND_HALF_UP)
    assert held.entry_price == filled_at  # exact: a trade's P&L is the cash it moved
    assert held.levels.atr_value == D("1.23456789").quantize(ATR_STEP)
    for level in (held.levels.stop_loss_price, held.levels.take_profit_price):
        assert level == level.quantize(PRICE_STEP)


def test_a_sale_carries_its_commission_and_the_buys_pro_rata() -> None:
    fills = FillModel(slippage_bps=D(0), commission=CommissionModel(per_order=D(1)))
    book = Book(D(100_000), fills, ReserveSettings())
    plan = StopPlan(D(2), D(2), D(2), D("0.5"))
    book.buy("XYZ", 0, "Tech", D(10), D(100), OPEN, OPEN.date(), plan, uuid.uuid4(), 1)
    book.buy("XYZ", 0, "Tech", D(30), D(104), OPEN, OPEN.date(), plan, uuid.uuid4(), 1)
    record = book.sell("XYZ", D(10), D(110), OPEN, OPEN.date(), "take_profit")
    assert (record.trade.entry_price, record.trade.fees) == (D(103), D(1) + D(2) * 10 / 40)
    assert book.holdings["XYZ"].entry_fees == D("1.5")
    assert book.reserve.balance == record.trade.pnl * D("0.20")
    last = book.sell("XYZ", D(30), D(110), OPEN, OPEN.date(), "take_profit")
    assert last.trade.fees == D(1) + D("1.5") and "XYZ" not in book.holdings


def test_a_holdings_kept_position_follows_every_change_to_it() -> None:
    # Issue 16: the position is kept between reads; each change must still show in the next.
    book = Book(D(100_000), FillModel(slippage_bps=D(0)), ReserveSettings())
    plan = StopPlan(D(2), D(2), D(2), D("0.5"))
    book.buy("XYZ", 0, "Tech", D(10), D(100), OPEN, OPEN.date(), plan, uuid.uuid4(), 1)
    held = book.holdings["XYZ"]

    def expected() -> tuple:
        levels = held.levels
        return (held.quantity, held.entry_price, held.price, levels.stop_loss_price, levels.take_profit_price)

    def seen() -> tuple:
        p = book.portfolio().positions[0]
        return (p.quantity, p.entry_price, p.current_price, p.stop_loss_price, p.take_profit_price)

    assert seen() == expected() and held.position() is held.position()
    held.price = to_decimal(101.5)
    book.repriced()
    assert seen() == expected() and seen()[2] == D("101.5")
    book.buy("XYZ", 0, "Tech", D(10), D(104), OPEN, OPEN.date(), plan, uuid.uuid4(), 1)
    assert seen() == expected() and seen()[:2] == (D(20), D(102))
    book.set_levels(held, replace(held.levels, stop_loss_price=D(99)))
    assert seen() == expected() and seen()[3] == D(99)
    book.mark_micro("XYZ")
    assert book.portfolio().positions[0].is_micro_trade
    assert held.position(D(90)).current_price == D(90) and seen()[2] == D(
        "101.5"
    )  # a price asked is not kept


def test_a_price_becomes_the_decimal_of_its_shortest_form_every_time() -> None:
    for value in (101.37, np.float64(101.37), 101.37, 0.1 + 0.2, -0.0, 0.0, 1e-7):
        assert str(to_decimal(value)) == str(Decimal(repr(float(value))))
    assert str(to_decimal(-0.0)) == "-0.0"
    assert to_decimal(float("nan")).is_nan()
