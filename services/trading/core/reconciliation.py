"""Reconciliation (issue 14): the broker's account against the engine's books, and the rule
that resolves each difference.

With a real broker the engine's books (its fills, its orders, the cash it last read) can drift
from the account: a position closed by hand in the broker's app, a fill whose event was lost
while the engine was down, an order the broker never got. This module compares plain values
of both sides and names every difference with the rule that resolves it:

- **in flight** (explained, nothing to do): an order of ours still working at the broker has
  filled part of the gap; its outcome will be reported as usual.
- **queued** (explained): an order of ours the broker does not have yet, whose job still waits
  in the order queue (the broker submits it; the same client order id makes a second send one
  order). A resting stop missing at the broker is queued too: the stop sync places it again.
- **adopted** (explained and corrected): the broker's figure is taken, with a correcting entry
  where the books need one: an order of ours the broker finished without us hearing of it
  (its outcome is recorded from the broker's order and reported to the engine), or the cash
  (the broker's cash is the account's).
- **unexplained**: nothing of ours accounts for it. New entries pause until the owner
  acknowledges it. Shares missing at the broker are taken off the engine's books with a
  correcting sale (the engine must never manage shares that are gone), priced from the
  broker's record of the outside sale when it has one; shares the engine never bought are
  left to the owner (the engine trades only what it bought).

Pure: values in, frozen values out; no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)


class Kind(StrEnum):
    POSITION = "position"  # a ticker's quantity differs
    MISSED_OUTCOME = "missed_outcome"  # an order of ours finished at the broker, not in our books
    ORDER_NOT_AT_BROKER = "order_not_at_broker"  # an order of ours the broker does not know
    UNKNOWN_ORDER = "unknown_order"  # an open order at the broker the engine did not place
    ORDER_STILL_OPEN = "order_still_open"  # our books have its outcome; the broker still works it
    CASH = "cash"


class Resolution(StrEnum):
    IN_FLIGHT = "in_flight"
    QUEUED = "queued"
    ADOPTED = "adopted"
    UNEXPLAINED = "unexplained"


@dataclass(frozen=True, slots=True)
class Tolerance:
    quantity: Decimal = Decimal("0.000000001")  # Alpaca's finest fractional share
    cash: Decimal = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Books:
    """One side's account: shares held per ticker (long only) and cash."""

    positions: Mapping[str, Decimal]
    cash: Decimal


@dataclass(frozen=True, slots=True)
class EngineOrder:
    """An order the engine placed, as its books record it."""

    client_order_id: str
    ticker: str
    side: str  # buy | sell
    quantity: Decimal
    working: bool  # no outcome recorded yet
    queued: bool = False  # its job waits in the order queue (submitted, or submitted again, soon)
    resting: bool = False  # a protective stop kept at the broker by the stop sync


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """An order as the broker lists it."""

    client_order_id: str
    ticker: str
    side: str
    quantity: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None
    open: bool
    filled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Correction:
    """The entry that brings the engine's books to the broker's figure."""

    side: str
    quantity: Decimal
    price: Decimal
    price_source: str
    at: datetime | None = None  # when the outside sale happened, if the broker recorded it


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: Kind
    ticker: str | None
    engine_figure: Decimal
    broker_figure: Decimal
    resolution: Resolution
    rule: str  # the stated rule, in words, as recorded and shown to the owner
    client_order_id: str | None = None
    correction: Correction | None = None

    @property
    def pauses(self) -> bool:
        """Unexplained: new entries wait for the owner's acknowledgement."""
        return self.resolution is Resolution.UNEXPLAINED

    @property
    def told(self) -> bool:
        """Sent to the owner and kept open until acknowledged; in-flight and queued ones are
        the ordinary traffic of a working account and settle by themselves."""
        return self.resolution in (Resolution.ADOPTED, Resolution.UNEXPLAINED)

    @property
    def key(self) -> tuple:
        """What makes two runs' findings the same finding."""
        return (self.kind, self.ticker, self.client_order_id, self.engine_figure, self.broker_figure)


def _signed(side: str, quantity: Decimal) -> Decimal:
    return quantity if side == "buy" else -quantity


def reconcile(
    engine: Books,
    engine_orders: Sequence[EngineOrder],
    broker: Books,
    broker_orders: Sequence[BrokerOrder],
    reference_prices: Mapping[str, Decimal],
    tolerance: Tolerance = Tolerance(),
) -> tuple[Discrepancy, ...]:
    """Every difference between the two sides, each with its resolution. `reference_prices`
    price a correcting sale when the broker has no record of the outside sale (the engine's
    latest price, or else its entry price)."""
    ours = {o.client_order_id: o for o in engine_orders}
    listed = {o.client_order_id for o in broker_orders}
    found: list[Discrepancy] = []
    in_flight: dict[str, Decimal] = defaultdict(lambda: ZERO)  # fills of our orders still open
    missed: dict[str, Decimal] = defaultdict(lambda: ZERO)  # fills of our orders finished unheard
    outside_sales: dict[str, list[BrokerOrder]] = defaultdict(list)
    cash_moving = False
    for order in broker_orders:
        mine = ours.get(order.client_order_id)
        if mine is None:
            if order.open:
                found.append(_unknown_order(order))
            elif order.side == "sell" and order.filled_quantity > 0 and order.average_price:
                outside_sales[order.ticker].append(order)
            continue
        if not mine.working:
            if order.open:
                found.append(_still_open(order))
            continue
        change = _signed(order.side, order.filled_quantity)
        if order.open:
            in_flight[order.ticker] += change
        else:
            missed[order.ticker] += change
            found.append(_missed_outcome(order))
        cash_moving |= order.filled_quantity > 0
    for order in engine_orders:
        if order.working and order.client_order_id not in listed:
            found.append(_not_at_broker(order))
    tickers = sorted({*engine.positions, *broker.positions, *in_flight, *missed})
    for ticker in tickers:
        found.extend(
            _position(
                ticker,
                engine.positions.get(ticker, ZERO),
                broker.positions.get(ticker, ZERO),
                in_flight[ticker],
                missed[ticker],
                outside_sales[ticker],
                reference_prices.get(ticker),
                tolerance,
            )
        )
    if abs(broker.cash - engine.cash) > tolerance.cash:
        found.append(_cash(engine.cash, broker.cash, cash_moving))
    return tuple(found)


def _unknown_order(order: BrokerOrder) -> Discrepancy:
    return Discrepancy(
        Kind.UNKNOWN_ORDER,
        order.ticker,
        ZERO,
        order.quantity - order.filled_quantity,
        Resolution.UNEXPLAINED,
        f"unexplained: an open {order.side} order the engine did not place; left alone at the "
        "broker (the engine never cancels what it did not place); new entries paused until acknowledged",
        order.client_order_id,
    )


def _still_open(order: BrokerOrder) -> Discrepancy:
    return Discrepancy(
        Kind.ORDER_STILL_OPEN,
        order.ticker,
        ZERO,
        order.quantity - order.filled_quantity,
        Resolution.UNEXPLAINED,
        "unexplained: the engine recorded this order's outcome but the broker still works it; "
        "new entries paused until acknowledged",
        order.client_order_id,
    )


def _missed_outcome(order: BrokerOrder) -> Discrepancy:
    what = (
        f"filled {order.filled_quantity} at {order.average_price}"
        if order.filled_quantity > 0
        else "ended unfilled"
    )
    return Discrepancy(
        Kind.MISSED_OUTCOME,
        order.ticker,
        ZERO,
        order.filled_quantity,
        Resolution.ADOPTED,
        f"adopted: the broker {what} without the engine hearing of it; the outcome is recorded "
        "from the broker's order and reported to the engine",
        order.client_order_id,
    )


def _not_at_broker(order: EngineOrder) -> Discrepancy:
    if order.resting:
        resolution, rule = (
            Resolution.QUEUED,
            "explained: a resting stop missing at the broker; the stop sync places it again",
        )
    elif order.queued:
        resolution, rule = (
            Resolution.QUEUED,
            "explained: its job is still queued; the broker submits it (the same client order id makes one order)",
        )
    else:
        resolution, rule = (
            Resolution.UNEXPLAINED,
            "unexplained: the broker does not have this order and no job of it is queued; "
            "new entries paused until acknowledged",
        )
    return Discrepancy(
        Kind.ORDER_NOT_AT_BROKER, order.ticker, order.quantity, ZERO, resolution, rule, order.client_order_id
    )


def _position(
    ticker: str,
    engine: Decimal,
    broker: Decimal,
    in_flight: Decimal,
    missed: Decimal,
    outside_sales: list[BrokerOrder],
    reference: Decimal | None,
    tolerance: Tolerance,
) -> list[Discrepancy]:
    expected = engine + in_flight + missed
    if abs(broker - expected) <= tolerance.quantity:
        if in_flight == 0 or abs(broker - engine) <= tolerance.quantity:
            return []  # agreed, or the missed outcome (adopted, told as such) accounts for it
        return [
            Discrepancy(
                Kind.POSITION,
                ticker,
                engine,
                broker,
                Resolution.IN_FLIGHT,
                "explained: an order in flight accounts for it; its outcome is reported when it ends",
            )
        ]
    gap = broker - expected
    if gap > 0:
        return [
            Discrepancy(
                Kind.POSITION,
                ticker,
                engine,
                broker,
                Resolution.UNEXPLAINED,
                f"unexplained: the broker holds {gap} more than the engine bought; left to the owner "
                "(the engine trades only the shares it bought); new entries paused until acknowledged",
            )
        ]
    missing = -gap
    price, source = _sale_price(outside_sales, reference)
    correction = None
    if price is not None:
        times = [o.filled_at for o in outside_sales if o.filled_at is not None]
        correction = Correction("sell", missing, price, source, max(times) if times else None)
    rule = (
        f"unexplained: {missing} shares are gone at the broker; taken off the engine's books with a "
        f"correcting sale at {price} ({source}); new entries paused until acknowledged"
        if correction is not None
        else f"unexplained: {missing} shares are gone at the broker and no price is known for them; "
        "the engine's books are left as they are; new entries paused until acknowledged"
    )
    return [
        Discrepancy(Kind.POSITION, ticker, engine, broker, Resolution.UNEXPLAINED, rule, None, correction)
    ]


def _sale_price(outside_sales: list[BrokerOrder], reference: Decimal | None) -> tuple[Decimal | None, str]:
    sold = sum((o.filled_quantity for o in outside_sales), ZERO)
    if sold > 0:
        average = sum((o.filled_quantity * o.average_price for o in outside_sales), ZERO) / sold
        return average.quantize(
            Decimal("0.0001")
        ), "the average price of the broker's sales the engine did not place"
    if reference is not None and reference > 0:
        return reference, "no sale on record at the broker: the engine's latest price"
    return None, ""


def _cash(engine: Decimal, broker: Decimal, moving: bool) -> Discrepancy:
    if moving:
        return Discrepancy(
            Kind.CASH,
            None,
            engine,
            broker,
            Resolution.IN_FLIGHT,
            "explained: an order of ours filled at the broker moved it; the broker's figure is read again with its outcome",
        )
    return Discrepancy(
        Kind.CASH,
        None,
        engine,
        broker,
        Resolution.ADOPTED,
        "adopted: the broker's cash is the account's (a deposit, a withdrawal, a dividend, a fee, or "
        "a trade the engine did not place)",
    )
