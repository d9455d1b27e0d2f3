"""The simulated account applies fills by the core's rule (`core/fill_application.py`), so what
it stores is what the live fill handler would store (issue 13)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from services.trading.backtest.book import Book, StopPlan
from services.trading.backtest.config import CommissionModel, FillModel
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
