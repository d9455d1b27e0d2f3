"""The Alpaca broker: the engine's order jobs placed at Alpaca, their outcomes reported back.

It is a drop-in for the paper broker (docs/contracts.md section 4): it consumes the same
signed jobs from `stonks:queue:broker_orders` and pushes the same `FillReport`s onto
`stonks:queue:broker_fills`, recording each order in `broker_orders` and each fill in
`broker_fills`, so the engine cannot tell which broker it talks to.

- **One order per job.** Our `client_order_id` is Alpaca's `client_order_id`. A job handled
  twice (a restart, a job pushed twice) is submitted again, and Alpaca's 422 for a duplicate
  id means "already sent": the order is looked up and followed. Nothing else is ever needed to
  stop a double order.
- **Outcomes from the stream.** `trade_updates` events drive the outcome; an order is
  reported once, when finished (`services/alpaca_broker/outcomes.py`): what it filled at the
  average price, or a rejection when nothing filled. Recording and reporting are guarded by the
  row's status (`accepted` until then), so a stream event, a catch-up and a re-handled job
  racing for one order report it once.
- **A job stays in the queue's processing list until its outcome is reported.** A broker that
  dies with orders in flight finds their jobs there at the next start, handles them again
  (duplicate submit, look-up) and reports what happened meanwhile. An outcome recorded but
  not yet pushed is re-sent the same way (the engine applies a report once).
- **Catch-up.** On every (re)connection of the stream, and every `catch_up_seconds` while
  orders are in flight, the orders submitted since the oldest in-flight order (or the last
  event) are listed and applied; an order the listing misses is looked up by its id.
- **Refusals.** A 4xx from Alpaca on submit (insufficient buying power, a symbol it does not
  trade, market closed, PDT protection...) is a `rejected` report with Alpaca's reason. 429,
  5xx and network faults are retried (`api.py`); when retries run out the job waits, like a
  paper-broker job whose database is down.
- **Money.** Quantities and prices are `Decimal` from the SDK's strings; Alpaca charges no
  commission on US equities, so `fee` is 0. The account's cash in `broker_account` is Alpaca's,
  read at start and after each outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
import structlog
from alpaca.trading.enums import OrderStatus
from alpaca.trading.models import Order, TradeUpdate

from services.alpaca_broker.api import AlpacaApi, BrokerRejected
from services.alpaca_broker.outcomes import Outcome, decimal_of, outcome_of
from services.alpaca_broker.reconciler import Reconciler
from services.alpaca_broker.resting_stops import SYNC_SECONDS, RestingStops
from services.alpaca_broker.stream import ReconnectingTradeStream
from services.shared.broker_orders import record_order
from services.shared.heartbeat import Heartbeat
from services.shared.order_intake import OrderIntake
from services.shared.order_signing import OrderSigner
from services.shared.orders import FillReport, OrderJob
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS
from services.shared.reliable_queue import ReliableQueue
from services.shared.schemas import OrderReason, OrderSide, TradingMode
from services.trading.core.clock import Clock

log = structlog.get_logger(__name__)
CATCH_UP_SECONDS = 30.0
# Alpaca's `after` is exclusive and its clock is not ours: list from a little earlier.
CATCH_UP_MARGIN = timedelta(seconds=5)
REFUSALS_COMPONENT = "alpaca_broker"


class AlpacaBroker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        orders: ReliableQueue,
        fills: ReliableQueue,
        clock: Clock,
        api: AlpacaApi,
        stream: ReconnectingTradeStream | None,
        *,
        order_signer: OrderSigner,
        mode: TradingMode,
        catch_up_seconds: float = CATCH_UP_SECONDS,
        reconcile_seconds: float | None = None,
        notifier=None,
        resting_stops: bool = False,
        stop_sync_seconds: float = SYNC_SECONDS,
    ) -> None:
        self.pool = pool
        self.orders = orders
        self.fills = fills
        self.clock = clock
        self.api = api
        self.stream = stream
        self.order_signer = order_signer
        self.intake = OrderIntake("alpaca broker", REFUSALS_COMPONENT, pool, orders, order_signer, clock.now)
        self.mode = mode  # the jobs it accepts: an Alpaca paper account takes paper jobs only
        self.catch_up_seconds = catch_up_seconds
        self.heartbeat = Heartbeat()
        # Jobs whose order is at Alpaca without an outcome yet: acked once it is reported.
        self._jobs: dict[str, set[str]] = {}
        self._submitted_at: dict[str, datetime] = {}  # Alpaca's submission time, for catch-up
        self.last_event_at: datetime | None = None
        self.catch_ups = 0
        if stream is not None:
            stream.subscribe_trade_updates(self.on_trade_update)
        # Reconciliation with the account at start and every `reconcile_seconds` (None: not run).
        self.reconciler = None
        if reconcile_seconds is not None:
            self.reconciler = Reconciler(self, notifier=notifier, interval_seconds=reconcile_seconds)
        # Each position's protective stop also resting at Alpaca (resting_stops.py).
        self.stops = RestingStops(self, sync_seconds=stop_sync_seconds) if resting_stops else None

    @classmethod
    def on_redis(
        cls, pool: asyncpg.Pool, redis, clock: Clock, api: AlpacaApi, stream, **kwargs
    ) -> AlpacaBroker:
        return cls(
            pool,
            ReliableQueue(redis, QUEUE_BROKER_ORDERS),
            ReliableQueue(redis, QUEUE_BROKER_FILLS),
            clock,
            api,
            stream,
            **kwargs,
        )

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """The account row, Alpaca's cash in it, and the jobs a previous run left in flight."""
        await self.pool.execute(
            "INSERT INTO broker_account (id, cash) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"
        )
        await self.refresh_cash()
        recovered = await self.orders.recover()
        if recovered:
            log.warning("alpaca broker took back order jobs a previous run left in flight", count=recovered)

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._catch_up_until(stop))]
        if self.reconciler is not None:
            tasks.append(asyncio.create_task(self.reconciler.run_until(stop)))
        if self.stops is not None:
            tasks.append(asyncio.create_task(self.stops.run_until(stop)))
        if self.stream is not None:
            tasks.append(asyncio.create_task(self.stream.run()))
        try:
            await self.intake.serve(stop, self.heartbeat, self.handle, self._reject_failed)
        finally:
            if self.stream is not None:
                await self.stream.stop_ws()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.heartbeat.stopped()

    async def _reject_failed(self, message: str, error: Exception) -> None:
        job = OrderJob.model_validate(self.order_signer.verified(message))
        await self._remember(job, message)
        await self._settle(
            job, Outcome("rejected", job.quantity, None, f"alpaca broker error: {error}", self.clock.now())
        )

    @property
    def in_flight(self) -> int:
        """Orders at Alpaca whose outcome is not reported yet (their jobs still unacked)."""
        return len(self._jobs)

    async def drain(self) -> int:
        """Handle every job waiting now; return how many (tests, the demo)."""
        return await self.intake.drain(self.handle)

    # ---- jobs ------------------------------------------------------------------------------

    async def handle(self, message: str) -> FillReport | None:
        """Place one job's order at Alpaca. Returns its report when the outcome is known now
        (a refusal, an order finished already); None while the order works at Alpaca."""
        job = await self.intake.job_of(message)
        if job is None:
            return None
        earlier = await self._remember(job, message)
        if earlier is not None and earlier["status"] != "accepted":
            return await self._resend(job, earlier)
        if job.mode is not self.mode:
            return await self._settle(
                job,
                Outcome(
                    "rejected",
                    job.quantity,
                    None,
                    f"a {job.mode.value} order sent to the Alpaca {self.mode.value} account",
                    self.clock.now(),
                ),
            )
        if job.side is OrderSide.SELL and self.stops is not None and await self.stops.release(job.ticker):
            # The resting stop sold the shares first: its fill is reported on its own; this
            # sale would sell shares that are gone.
            return await self._settle(
                job,
                Outcome(
                    "rejected",
                    job.quantity,
                    None,
                    "alpaca: the position's resting stop filled at the broker first; not sold again",
                    self.clock.now(),
                ),
            )
        try:
            order = await self.api.submit_market(job)
        except BrokerRejected as refusal:
            if not refusal.duplicate:
                log.warning(
                    "alpaca refused an order", client_order_id=job.client_order_id, reason=refusal.reason
                )
                return await self._settle(
                    job, Outcome("rejected", job.quantity, None, refusal.reason, self.clock.now())
                )
            log.info("alpaca already has this order; following it", client_order_id=job.client_order_id)
            order = await self.api.order_by_client_id(job.client_order_id)
        return await self.apply_order(order)

    async def _remember(self, job: OrderJob, message: str) -> asyncpg.Record | None:
        """Record the order (status `accepted`) unless known; return the earlier row if any."""
        self._jobs.setdefault(job.client_order_id, set()).add(message)
        async with self.pool.acquire() as connection:
            inserted = await record_order(connection, job, self.clock.now())
            if inserted is not None:
                return None
            return await connection.fetchrow(
                "SELECT * FROM broker_orders WHERE client_order_id = $1", job.client_order_id
            )

    # ---- outcomes --------------------------------------------------------------------------

    async def on_trade_update(self, update: TradeUpdate) -> None:
        """One `trade_updates` event. Never raises: the SDK would drop the connection's next
        events with it; a failure here is left to the next catch-up."""
        try:
            if self.last_event_at is None or update.timestamp > self.last_event_at:
                self.last_event_at = update.timestamp
            event = getattr(update.event, "value", update.event)
            if event == "partial_fill":
                log.info(
                    "alpaca partial fill",
                    client_order_id=update.order.client_order_id,
                    filled=str(decimal_of(update.order.filled_qty)),
                    of=str(decimal_of(update.order.qty)),
                )
            await self.apply_order(update.order)
        except Exception:
            log.exception("alpaca broker could not apply a trade update; the catch-up will")

    async def apply_order(self, order: Order) -> FillReport | None:
        """Report `order`'s outcome if it is finished and ours and not reported yet."""
        row = await self.pool.fetchrow(
            "SELECT * FROM broker_orders WHERE client_order_id = $1", order.client_order_id
        )
        if row is None:
            log.info(
                "alpaca order not placed by the engine; left alone", client_order_id=order.client_order_id
            )
            return None
        outcome = outcome_of(order, row["quantity"])
        if row["order_type"] == "stop":
            return await self._apply_stop(row, order, outcome)
        if outcome is None:
            if order.client_order_id in self._jobs:  # still in flight: the catch-up lists from here
                self._submitted_at.setdefault(order.client_order_id, order.submitted_at)
            return None
        return await self._settle(_job_of(row), outcome)

    async def _apply_stop(
        self, row: asyncpg.Record, order: Order, outcome: Outcome | None
    ) -> FillReport | None:
        """A resting stop's news: a fill is reported like any sale; one we cancelled or replaced
        ends quietly; one Alpaca or the owner ended unfilled is reported as a rejection."""
        ended_by_us = row["status"] == "cancelling" or order.status is OrderStatus.REPLACED
        if outcome is None and order.status is not OrderStatus.REPLACED:
            return None
        if outcome is None or (outcome.status == "rejected" and ended_by_us):
            await self.pool.execute(
                """UPDATE broker_orders SET status = 'cancelled', updated_at = $2
                   WHERE client_order_id = $1 AND status IN ('accepted', 'cancelling')""",
                row["client_order_id"],
                self.clock.now(),
            )
            report = None
        else:
            report = await self._settle(_job_of(row), outcome)
        if self.stops is not None:
            self.stops.wake.set()
        return report

    async def _settle(self, job: OrderJob, outcome: Outcome) -> FillReport | None:
        """Record the outcome once (the row leaves `accepted` in the same transaction as the
        fill is written), push the report, ack the job. None if it was settled already."""
        now = self.clock.now()
        async with self.pool.acquire() as connection, connection.transaction():
            order_id = await connection.fetchval(
                """UPDATE broker_orders SET status = $2, reject_reason = $3, updated_at = $4
                   WHERE client_order_id = $1 AND status IN ('accepted', 'cancelling') RETURNING id""",
                job.client_order_id,
                outcome.status,
                None if outcome.reject_reason is None else outcome.reject_reason[:500],
                now,
            )
            if order_id is None:
                return None
            fill_id = None
            if outcome.status == "filled":
                fill_id = await connection.fetchval(
                    """INSERT INTO broker_fills (order_id, client_order_id, ticker, side, quantity, price, fee, filled_at)
                       VALUES ($1, $2, $3, $4, $5, $6, 0, $7) RETURNING id""",
                    order_id,
                    job.client_order_id,
                    job.ticker,
                    job.side.value,
                    outcome.quantity,
                    outcome.price,
                    outcome.at,
                )
        report = FillReport(
            client_order_id=job.client_order_id,
            trading_decision_id=job.trading_decision_id,
            broker_order_id=order_id,
            ticker=job.ticker,
            side=job.side,
            reason=job.reason,
            status=outcome.status,
            quantity=outcome.quantity,
            price=outcome.price,
            fee=Decimal(0),
            reject_reason=outcome.reject_reason,
            fill_id=fill_id,
            at=outcome.at,
        )
        if self.stops is not None:
            self.stops.wake.set()  # a position changed: its resting stop follows
        if outcome.status == "filled":
            # Before the report, as the paper broker's cash moves in the fill's transaction:
            # whoever reads the report then reads the account after it.
            await self.refresh_cash()
        await self._report(report)
        log.info(
            "alpaca broker",
            outcome=report.status,
            ticker=job.ticker,
            side=job.side.value,
            quantity=str(report.quantity),
            price=str(report.price),
            reason=report.reject_reason,
        )
        return report

    async def _resend(self, job: OrderJob, row: asyncpg.Record) -> FillReport:
        """A job whose outcome was recorded before: send that outcome again."""
        fill = await self.pool.fetchrow("SELECT * FROM broker_fills WHERE order_id = $1", row["id"])
        report = FillReport(
            client_order_id=job.client_order_id,
            trading_decision_id=job.trading_decision_id,
            broker_order_id=row["id"],
            ticker=job.ticker,
            side=job.side,
            reason=job.reason,
            status="filled" if fill is not None else "rejected",
            quantity=fill["quantity"] if fill is not None else job.quantity,
            price=fill["price"] if fill is not None else None,
            fee=fill["fee"] if fill is not None else Decimal(0),
            reject_reason=None if fill is not None else (row["reject_reason"] or "order was not filled"),
            fill_id=fill["id"] if fill is not None else None,
            at=fill["filled_at"] if fill is not None else row["updated_at"],
        )
        await self._report(report)
        return report

    async def _report(self, report: FillReport) -> None:
        await self.fills.push(report.model_dump_json())
        for message in self._jobs.pop(report.client_order_id, set()):
            await self.orders.ack_all(message)
        self._submitted_at.pop(report.client_order_id, None)

    async def refresh_cash(self) -> None:
        """Alpaca's cash (and buying power, equity) into `broker_account`, best effort: the
        next outcome tries again."""
        try:
            account = await self.api.account()
        except Exception as exc:  # noqa: BLE001 - a stale cash figure must not stop a fill report
            log.warning(
                "alpaca broker could not read the account's cash", error=f"{type(exc).__name__}: {exc}"
            )
            return
        await self.store_account(account)

    async def store_account(self, account) -> None:
        """The account's figures as Alpaca gives them: in this mode the engine's cash, buying
        power and equity are the broker's (docs/decisions.md, *Reconciliation*)."""
        cash = decimal_of(account.cash)
        if cash is not None:
            await self.pool.execute(
                """UPDATE broker_account SET cash = $1, buying_power = $2, equity = $3, updated_at = $4
                   WHERE id = 1""",
                cash,
                decimal_of(account.buying_power),
                decimal_of(account.equity),
                self.clock.now(),
            )

    # ---- catch-up --------------------------------------------------------------------------

    async def _catch_up_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            connected = self.stream.connected if self.stream is not None else asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connected.wait(), self.catch_up_seconds)
            reconnected = connected.is_set()
            connected.clear()
            if stop.is_set():
                return
            try:
                if reconnected or self._submitted_at:
                    await self.catch_up()
            except Exception as exc:  # noqa: BLE001 - the next connection or interval tries again
                log.warning("alpaca broker catch-up failed", error=f"{type(exc).__name__}: {exc}")

    async def catch_up(self) -> int:
        """Apply what the stream may have missed; return how many outcomes it reported."""
        self.catch_ups += 1
        pending = {
            r["client_order_id"]
            for r in await self.pool.fetch(
                "SELECT client_order_id FROM broker_orders WHERE status = 'accepted'"
            )
        }
        if not pending:
            return 0
        reported = 0
        known = [self._submitted_at[c] for c in pending if c in self._submitted_at]
        if self.last_event_at is not None:
            known.append(self.last_event_at)
        if known:
            for order in await self.api.orders_since(min(known) - CATCH_UP_MARGIN):
                if order.client_order_id in pending:
                    pending.discard(order.client_order_id)
                    reported += await self.apply_order(order) is not None
        if pending:  # resting stops are old: one listing of the open orders spares a look-up each
            pending -= {o.client_order_id for o in await self.api.open_orders()}
        for client_order_id in sorted(pending):  # not in the listing: older, or past its page
            try:
                order = await self.api.order_by_client_id(client_order_id)
            except BrokerRejected as refusal:
                if refusal.not_found:
                    # Recorded but never reached Alpaca (we died before submitting): its job,
                    # back in the queue at start, submits it.
                    continue
                raise
            reported += await self.apply_order(order) is not None
        if reported:
            log.warning("alpaca broker caught up on outcomes the stream did not deliver", count=reported)
        return reported


def _job_of(row: asyncpg.Record) -> OrderJob:
    """The order as recorded, in the job's shape (for its report)."""
    return OrderJob.model_construct(
        job_id=row["job_id"],
        client_order_id=row["client_order_id"],
        trading_decision_id=row["trading_decision_id"],
        ticker=row["ticker"],
        side=OrderSide(row["side"]),
        quantity=row["quantity"],
        mode=TradingMode(row["mode"]),
        reason=OrderReason(row["reason"]),
        created_at=row["created_at"],
    )
