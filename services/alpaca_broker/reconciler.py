"""Reconciliation's driver (issue 14): the Alpaca account against PostgreSQL, at the broker's
start and every few minutes while it runs.

It runs in the Alpaca broker, not in the engine: the broker holds the account's API (one rate
limiter per process), knows which orders it placed and which jobs wait in its queue, and is
the one writing the fills the engine's books are made of; the engine stays unaware of which
broker it talks to. The rules are `core/reconciliation.py`'s; this module reads both sides,
confirms what it found, acts on it and records it (`live/reconciliation_store.py`):

- **Reads, engine first.** The engine's books (held shares as the sum of the recorded fills,
  cash, the orders without an outcome) are read in one snapshot before the broker's account,
  positions and orders. A fill landing in between then shows as an order of ours still
  working, never as shares gone: the race can only make a difference look larger at the
  broker, which is never corrected, only paused on.
- **Confirmed before acted on.** A finding that would be told or corrected must be found
  again by a second read `confirm_seconds` later, with the same figures: a fill between the
  two reads of one pass is not a difference.
- **Acting.** An outcome the stream missed is looked up and applied as the stream's would
  have been (recorded, reported). A correcting sale is recorded in the run's transaction and
  its report pushed to the engine (and pushed again at later runs until applied). The
  account's cash, buying power and equity are stored from the broker every run. Unexplained
  findings pause new entries (a `reconciliation` breaker event). Every told finding reaches
  the owner through the notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from alpaca.trading.enums import OrderStatus
from alpaca.trading.models import Order

from services.alpaca_broker.api import BrokerRejected
from services.alpaca_broker.outcomes import FINISHED, decimal_of
from services.shared.orders import FillReport
from services.shared.pause import pause_unless_stopped
from services.shared.schemas import OrderReason, OrderSide
from services.trading.core.reconciliation import (
    Books,
    BrokerOrder,
    Discrepancy,
    EngineOrder,
    Kind,
    Tolerance,
    reconcile,
)
from services.trading.live.reconciliation_store import (
    ReconciliationStore,
    RunRecord,
    correction_decision_id,
)
from services.trading.notifications import events

log = structlog.get_logger(__name__)
RECONCILE_MINUTES = 5.0
CONFIRM_SECONDS = 2.0
FIRST_WINDOW = timedelta(days=1)  # the broker's order history read at the first run
WINDOW_MARGIN = timedelta(minutes=1)
WORKING = ("accepted", "cancelling")


@dataclass(frozen=True, slots=True)
class Snapshot:
    engine: Books
    engine_orders: tuple[EngineOrder, ...]
    broker: Books
    broker_orders: tuple[BrokerOrder, ...]
    reference_prices: dict[str, Decimal]
    buying_power: Decimal | None
    equity: Decimal | None

    def found(self, tolerance: Tolerance) -> tuple[Discrepancy, ...]:
        return reconcile(
            self.engine, self.engine_orders, self.broker, self.broker_orders, self.reference_prices, tolerance
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: int
    found: tuple[Discrepancy, ...]  # confirmed findings, known ones included
    recorded: int  # new findings written by this run
    paused: bool


class Reconciler:
    def __init__(
        self,
        broker,
        *,
        notifier=None,
        interval_seconds: float = RECONCILE_MINUTES * 60,
        confirm_seconds: float = CONFIRM_SECONDS,
        tolerance: Tolerance = Tolerance(),
    ) -> None:
        self.broker = broker  # the AlpacaBroker whose account this is
        self.pool, self.api, self.clock = broker.pool, broker.api, broker.clock
        self.store = ReconciliationStore(broker.pool)
        self.notifier = notifier
        self.interval_seconds = interval_seconds
        self.confirm_seconds = confirm_seconds
        self.tolerance = tolerance
        self.last_started: datetime | None = None
        self.runs = 0

    async def run_until(self, stop: asyncio.Event) -> None:
        trigger = "start"
        while not stop.is_set():
            try:
                await self.run_once(trigger)
            except Exception as exc:  # noqa: BLE001 - recorded as a failed run; the next one tries again
                log.error("reconciliation failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):
                    now = self.clock.now()
                    await self.store.record_run(
                        RunRecord(trigger, now, now, "failed", f"{type(exc).__name__}: {exc}"[:2000]),
                        (),
                        self.broker.mode.value,
                    )
            trigger = "interval"
            await pause_unless_stopped(stop, self.interval_seconds)

    async def run_once(self, trigger: str = "interval") -> RunResult:
        started = self.clock.now()
        since = (self.last_started or started - FIRST_WINDOW) - WINDOW_MARGIN
        first = await self.snapshot(since)
        found = first.found(self.tolerance)
        final = first
        if any(d.told for d in found) and self.confirm_seconds >= 0:
            await asyncio.sleep(self.confirm_seconds)
            final = await self.snapshot(since)
            again = final.found(self.tolerance)
            earlier = {d.key for d in found if d.told}
            found = tuple(d for d in again if not d.told or d.key in earlier)
        self.last_started = started
        for discrepancy in found:
            if discrepancy.kind is Kind.MISSED_OUTCOME:
                await self._adopt_outcome(discrepancy.client_order_id)
        run = RunRecord(
            trigger,
            started,
            self.clock.now(),
            "differences" if any(d.told for d in found) else "agreed",
            positions_compared=len({*final.engine.positions, *final.broker.positions}),
            orders_compared=len(final.broker_orders),
            engine_cash=final.engine.cash,
            broker_cash=final.broker.cash,
            broker_buying_power=final.buying_power,
            broker_equity=final.equity,
        )
        # The account's figures are the broker's in this mode: stored whatever was found.
        await self.pool.execute(
            "UPDATE broker_account SET cash = $1, buying_power = $2, equity = $3, updated_at = $4 WHERE id = 1",
            final.broker.cash,
            final.buying_power,
            final.equity,
            self.clock.now(),
        )
        run_id, recorded = await self.store.record_run(run, found, self.broker.mode.value)
        for entry in await self.store.unapplied_corrections(started):
            await self._push_correction(entry)
        for entry in recorded:
            if entry.correction_order_id is not None:
                await self._push_correction(await self._correction_row(entry.correction_order_id))
            if entry.discrepancy.told:
                self._tell(entry.id, entry.discrepancy)
        self.runs += 1
        paused = await self.store.paused()
        level = log.warning if recorded and any(r.discrepancy.told for r in recorded) else log.info
        level(
            "reconciliation",
            trigger=trigger,
            found=len(found),
            recorded=len(recorded),
            unexplained=sum(d.pauses for d in found),
            paused=paused,
        )
        return RunResult(run_id, found, len(recorded), paused)

    # -- reading both sides --------------------------------------------------------------

    async def snapshot(self, since: datetime) -> Snapshot:
        async with (
            self.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            held = await connection.fetch(_ENGINE_POSITIONS)
            cash = await connection.fetchval(
                "SELECT coalesce((SELECT cash FROM broker_account WHERE id = 1), 0)"
            )
            working = await connection.fetch(
                "SELECT * FROM broker_orders WHERE status = ANY($1::text[])", list(WORKING)
            )
            watermark = await connection.fetchval("SELECT coalesce(max(id), 0) FROM broker_orders")
            entries = await connection.fetch(
                "SELECT ticker, entry_price FROM position_stop_levels WHERE active"
            )
        account = await self.api.account()
        positions = await self.api.positions()
        listed: dict[str, Order] = {}
        for order in [*await self.api.orders_since(since), *await self.api.open_orders()]:
            listed[order.client_order_id] = order
        queued = await self._queued()
        engine_orders = {
            r["client_order_id"]: _engine_order(r, True, r["client_order_id"] in queued) for r in working
        }
        for client_order_id in [c for c in engine_orders if c not in listed]:
            with contextlib.suppress(BrokerRejected):  # 404: the broker does not have it
                listed[client_order_id] = await self.api.order_by_client_id(client_order_id)
        unknown = [c for c in listed if c not in engine_orders]
        for row in await self.pool.fetch(
            "SELECT * FROM broker_orders WHERE client_order_id = ANY($1::text[])", unknown
        ):
            # Placed after the engine's snapshot: its fills cannot be in the books read there.
            engine_orders[row["client_order_id"]] = _engine_order(
                row, row["id"] > watermark or row["status"] in WORKING, row["client_order_id"] in queued
            )
        broker_positions = {p.symbol: decimal_of(p.qty) or Decimal(0) for p in positions}
        prices = {r["ticker"]: r["entry_price"] for r in entries}
        prices |= {p.symbol: decimal_of(p.current_price) for p in positions if decimal_of(p.current_price)}
        return Snapshot(
            Books({r["ticker"]: r["quantity"] for r in held}, cash),
            tuple(engine_orders.values()),
            Books({t: q for t, q in broker_positions.items() if q}, decimal_of(account.cash) or Decimal(0)),
            tuple(_broker_order(o) for o in listed.values()),
            prices,
            decimal_of(account.buying_power),
            decimal_of(account.equity),
        )

    async def _queued(self) -> set[str]:
        """Client order ids of the jobs waiting in the order queue or being handled."""
        queue = self.broker.orders
        messages = [
            *await queue.client.lrange(queue.name, 0, -1),
            *await queue.client.lrange(queue.processing, 0, -1),
        ]
        ids = set()
        for message in messages:
            with contextlib.suppress(Exception):  # a malformed job is the broker's to park
                text = message.decode() if isinstance(message, bytes) else message
                ids.add(self.broker.order_signer.verified(text)["client_order_id"])
        return ids

    # -- acting ------------------------------------------------------------------------------

    async def _adopt_outcome(self, client_order_id: str | None) -> None:
        order = await self.api.order_by_client_id(client_order_id)
        await self.broker.apply_order(order)

    async def _correction_row(self, client_order_id: str):
        return await self.pool.fetchrow(
            """SELECT b.id AS order_id, b.client_order_id, b.ticker, b.side, f.id AS fill_id, f.quantity,
                      f.price, f.filled_at
               FROM broker_orders b JOIN broker_fills f ON f.order_id = b.id WHERE b.client_order_id = $1""",
            client_order_id,
        )

    async def _push_correction(self, row) -> None:
        report = FillReport(
            client_order_id=row["client_order_id"],
            trading_decision_id=correction_decision_id(row["client_order_id"]),
            broker_order_id=row["order_id"],
            ticker=row["ticker"],
            side=OrderSide(row["side"]),
            reason=OrderReason.RECONCILIATION,
            status="filled",
            quantity=row["quantity"],
            price=row["price"],
            fee=Decimal(0),
            fill_id=row["fill_id"],
            at=row["filled_at"],
        )
        await self.broker.fills.push(report.model_dump_json())

    def _tell(self, discrepancy_id: int, d: Discrepancy) -> None:
        if self.notifier is None:
            log.warning(
                "reconciliation difference (no notifier in this process)",
                kind=d.kind.value,
                ticker=d.ticker,
                rule=d.rule,
            )
            return
        self.notifier.notify(
            events.reconciliation_discrepancy(
                self.clock.now(),
                discrepancy_id=discrepancy_id,
                kind=d.kind.value,
                ticker=d.ticker,
                engine_figure=d.engine_figure,
                broker_figure=d.broker_figure,
                resolution=d.resolution.value,
                rule=d.rule,
                pauses=d.pauses,
                client_order_id=d.client_order_id,
            )
        )


def _engine_order(row, working: bool, queued: bool) -> EngineOrder:
    return EngineOrder(
        row["client_order_id"],
        row["ticker"],
        row["side"],
        row["quantity"],
        working=working,
        queued=queued,
        resting=row["order_type"] == "stop",
    )


def _broker_order(order: Order) -> BrokerOrder:
    side = getattr(order.side, "value", str(order.side))
    return BrokerOrder(
        order.client_order_id,
        order.symbol,
        side,
        decimal_of(order.qty) or Decimal(0),
        decimal_of(order.filled_qty) or Decimal(0),
        decimal_of(order.filled_avg_price),
        # Replaced ends this order (its successor is listed on its own); anything unfinished works.
        open=order.status not in FINISHED and order.status is not OrderStatus.REPLACED,
        filled_at=order.filled_at,
    )


_ENGINE_POSITIONS = """
SELECT ticker, sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) AS quantity
FROM broker_fills GROUP BY ticker
HAVING sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) <> 0
"""
