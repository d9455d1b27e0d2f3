"""The reconciliation rules (core/reconciliation.py) against worlds built step by step: the
engine's books, then the broker's account made from them by the engine's own orders (some
working, some finished unheard) and by trades the engine never placed. What each difference
must resolve to is known from how the world was built, not from the code under test."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core.reconciliation import (
    Books,
    BrokerOrder,
    EngineOrder,
    Kind,
    Resolution,
    reconcile,
)

TICKERS = ("AAA", "BBB", "CCC", "DDD")
PRICE = Decimal("20.00")


@dataclass
class World:
    engine_positions: dict[str, Decimal]
    engine_cash: Decimal
    engine_orders: list[EngineOrder] = field(default_factory=list)
    broker_orders: list[BrokerOrder] = field(default_factory=list)
    outside: dict[str, Decimal] = field(default_factory=dict)  # shares changed by the owner's hand
    missed: set[str] = field(default_factory=set)  # our orders the broker finished unheard
    working_fills: dict[str, Decimal] = field(default_factory=dict)  # signed fills of our open orders
    cash_moved_outside: bool = False

    def broker_positions(self) -> dict[str, Decimal]:
        held = dict(self.engine_positions)
        for order in self.broker_orders:
            if order.client_order_id.startswith("ours-"):
                sign = 1 if order.side == "buy" else -1
                held[order.ticker] = held.get(order.ticker, Decimal(0)) + sign * order.filled_quantity
        for ticker, change in self.outside.items():
            held[ticker] = held.get(ticker, Decimal(0)) + change
        return {t: q for t, q in held.items() if q != 0}


@st.composite
def worlds(draw) -> World:
    engine = {t: Decimal(draw(st.integers(0, 50))) for t in draw(st.sets(st.sampled_from(TICKERS)))}
    engine = {t: q for t, q in engine.items() if q}
    world = World(engine, Decimal(draw(st.integers(0, 100_000))))
    for n in range(draw(st.integers(0, 4))):
        ticker = draw(st.sampled_from(TICKERS))
        held = world.broker_positions().get(ticker, Decimal(0))
        side = "sell" if held and draw(st.booleans()) else "buy"
        quantity = Decimal(draw(st.integers(1, int(held) if side == "sell" else 30)))
        filled = Decimal(draw(st.integers(0, int(quantity))))
        finished = draw(st.booleans())
        cid = f"ours-{n}"
        world.engine_orders.append(EngineOrder(cid, ticker, side, quantity, working=True))
        world.broker_orders.append(
            BrokerOrder(cid, ticker, side, quantity, filled, PRICE if filled else None, open=not finished)
        )
        if finished:
            world.missed.add(cid)
        else:
            signed = filled if side == "buy" else -filled
            world.working_fills[ticker] = world.working_fills.get(ticker, Decimal(0)) + signed
    for ticker in draw(st.sets(st.sampled_from(TICKERS), max_size=2)):
        held = world.broker_positions().get(ticker, Decimal(0))
        change = Decimal(draw(st.integers(-int(held), 20)))
        if change:
            world.outside[ticker] = change
            side = "buy" if change > 0 else "sell"
            world.broker_orders.append(
                BrokerOrder(
                    f"app-{ticker}", ticker, side, abs(change), abs(change), Decimal("18.50"), open=False
                )
            )
    return world


def _run(world: World, broker_cash: Decimal | None = None):
    return reconcile(
        Books(world.engine_positions, world.engine_cash),
        world.engine_orders,
        Books(world.broker_positions(), world.engine_cash if broker_cash is None else broker_cash),
        world.broker_orders,
        {t: PRICE for t in TICKERS},
    )


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_a_ticker_pauses_entries_exactly_when_the_owner_changed_it_by_hand(world: World) -> None:
    found = _run(world)
    unexplained = {d.ticker for d in found if d.kind is Kind.POSITION and d.pauses}
    assert unexplained == set(world.outside)
    assert all(not d.pauses for d in found if d.kind is not Kind.POSITION)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_every_order_finished_unheard_is_adopted_and_nothing_else_is(world: World) -> None:
    found = _run(world)
    adopted = {d.client_order_id for d in found if d.kind is Kind.MISSED_OUTCOME}
    assert adopted == world.missed
    assert all(d.resolution is Resolution.ADOPTED for d in found if d.kind is Kind.MISSED_OUTCOME)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_after_the_stated_resolutions_the_books_agree_except_shares_left_to_the_owner(world: World) -> None:
    """The engine's books, plus every adopted outcome, every in-flight fill and every
    correcting sale, equal the broker's positions; only shares bought by hand differ."""
    found = _run(world)
    books = dict(world.engine_positions)
    fills = {o.client_order_id: o for o in world.broker_orders}
    for d in found:
        if d.kind is Kind.MISSED_OUTCOME:
            order = fills[d.client_order_id]
            books[order.ticker] = books.get(order.ticker, Decimal(0)) + (
                order.filled_quantity if order.side == "buy" else -order.filled_quantity
            )
        if d.correction is not None:
            books[d.ticker] = books.get(d.ticker, Decimal(0)) - d.correction.quantity
    for ticker, quantity in world.working_fills.items():
        books[ticker] = books.get(ticker, Decimal(0)) + quantity
    broker = world.broker_positions()
    for ticker in TICKERS:
        difference = broker.get(ticker, Decimal(0)) - books.get(ticker, Decimal(0))
        assert difference == max(world.outside.get(ticker, Decimal(0)), Decimal(0)), ticker


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_a_correcting_sale_is_priced_from_the_brokers_record_of_the_outside_sale(world: World) -> None:
    for d in _run(world):
        if d.correction is not None:
            assert world.outside[d.ticker] < 0
            assert d.correction.price == Decimal("18.50")


@given(st.integers(0, 10_000), st.integers(-500, 500))
def test_cash_is_the_brokers_and_a_difference_of_a_cent_or_less_is_none(cash: int, cents: int) -> None:
    world = World({}, Decimal(cash))
    found = _run(world, Decimal(cash) + Decimal(cents) / 100)
    if abs(cents) <= 1:
        assert found == ()
    else:
        [d] = found
        assert (d.kind, d.resolution, d.broker_figure) == (
            Kind.CASH,
            Resolution.ADOPTED,
            Decimal(cash) + Decimal(cents) / 100,
        )
        assert not d.pauses


def test_an_order_the_broker_never_got_is_explained_by_its_queued_job_and_unexplained_without() -> None:
    queued = EngineOrder("a", "AAA", "buy", Decimal(5), working=True, queued=True)
    lost = EngineOrder("b", "BBB", "buy", Decimal(5), working=True)
    stop = EngineOrder("c", "CCC", "sell", Decimal(5), working=True, resting=True)
    found = reconcile(
        Books({"CCC": Decimal(5)}, Decimal(0)),
        [queued, lost, stop],
        Books({"CCC": Decimal(5)}, Decimal(0)),
        [],
        {},
    )
    assert {(d.client_order_id, d.resolution) for d in found} == {
        ("a", Resolution.QUEUED),
        ("b", Resolution.UNEXPLAINED),
        ("c", Resolution.QUEUED),
    }


def test_an_open_order_the_engine_did_not_place_pauses_and_one_it_finished_still_open_too() -> None:
    done = EngineOrder("mine", "AAA", "buy", Decimal(5), working=False)
    found = reconcile(
        Books({}, Decimal(0)),
        [done],
        Books({}, Decimal(0)),
        [
            BrokerOrder("mine", "AAA", "buy", Decimal(5), Decimal(0), None, open=True),
            BrokerOrder("app", "BBB", "buy", Decimal(3), Decimal(0), None, open=True),
        ],
        {},
    )
    assert {(d.kind, d.client_order_id, d.pauses) for d in found} == {
        (Kind.ORDER_STILL_OPEN, "mine", True),
        (Kind.UNKNOWN_ORDER, "app", True),
    }


def test_agreeing_books_have_no_discrepancy_and_an_in_flight_fill_is_explained() -> None:
    books = Books({"AAA": Decimal(10)}, Decimal(500))
    assert reconcile(books, [], books, [], {}) == ()
    working = EngineOrder("w", "AAA", "buy", Decimal(10), working=True)
    partial = BrokerOrder("w", "AAA", "buy", Decimal(10), Decimal(4), Decimal(20), open=True)
    [d] = reconcile(books, [working], Books({"AAA": Decimal(14)}, Decimal(500)), [partial], {})
    assert (d.kind, d.resolution, d.pauses, d.told) == (Kind.POSITION, Resolution.IN_FLIGHT, False, False)
