"""An Alpaca order becomes one outcome when it finishes: what it filled at its average price,
or a rejection naming how it ended; nothing while it works. Parsed by the SDK's own model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.trading.models import Order

from services.alpaca_broker.outcomes import outcome_of


def _order(status: str, filled_qty: str = "0", filled_avg_price: str | None = None, qty: str = "10") -> Order:
    return Order(
        id="61e69015-8549-4bfd-b9c3-01e75843f47d",
        client_order_id="abc-0",
        created_at="2024-03-05T16:30:00Z",
        updated_at="2024-03-05T16:31:00Z",
        submitted_at="2024-03-05T16:30:00Z",
        filled_at="2024-03-05T16:31:00Z" if status == "filled" else None,
        canceled_at="2024-03-05T16:31:00Z" if status == "canceled" else None,
        symbol="XYZ",
        asset_class="us_equity",
        qty=qty,
        filled_qty=filled_qty,
        filled_avg_price=filled_avg_price,
        order_class="simple",
        type="market",
        side="buy",
        time_in_force="day",
        status=status,
        extended_hours=False,
    )


@pytest.mark.parametrize("status", ["new", "accepted", "partially_filled", "pending_cancel", "done_for_day"])
def test_a_working_order_has_no_outcome_yet(status: str) -> None:
    assert outcome_of(_order(status, "4", "50.1"), Decimal(10)) is None


def test_a_filled_order_reports_its_quantity_and_average_price_exactly() -> None:
    outcome = outcome_of(_order("filled", "10", "50.3333"), Decimal(10))
    assert (outcome.status, outcome.quantity, outcome.price) == ("filled", Decimal(10), Decimal("50.3333"))


def test_a_cancelled_order_with_a_partial_fill_reports_what_filled() -> None:
    outcome = outcome_of(_order("canceled", "4", "50.00"), Decimal(10))
    assert (outcome.status, outcome.quantity, outcome.price) == ("filled", Decimal(4), Decimal("50.00"))


@pytest.mark.parametrize(
    ("status", "words"), [("canceled", "cancelled"), ("expired", "expired"), ("rejected", "rejected")]
)
def test_an_order_that_ended_unfilled_is_a_rejection_saying_how(status: str, words: str) -> None:
    outcome = outcome_of(_order(status), Decimal(10))
    assert (outcome.status, outcome.quantity, outcome.price) == ("rejected", Decimal(10), None)
    assert words in outcome.reject_reason
