"""The paper broker: fills the engine's market orders at the market price, on paper.

It consumes `stonks:queue:broker_orders` through a `ReliableQueue`, so a job it was handling
when it died is handled again on restart; `client_order_id` is unique in `broker_orders`, so
handling a job twice fills it once (the second time only re-sends the first outcome). Each
order's outcome (fill or rejection) is written with the account's cash in one transaction,
then reported on `stonks:queue:broker_fills`.

Fill model: the latest price from `PriceBook` plus slippage (default 5 bps, against the
trader), plus an optional flat commission. Rejected: no price, more cash than the account
has, more shares than it holds, or a live-mode order (this broker only pretends).

Only jobs the engine's outbox signed are handled (`services/shared/order_signing.py`). A job
without the signature, or whose content no longer matches it, is refused: never filled, a
critical log, a row in `engine_faults` (component `paper_broker`, counted on /metrics) and the
message parked in the queue's dead letters.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
import structlog

from services.shared.broker_orders import record_order
from services.shared.heartbeat import Heartbeat
from services.shared.order_intake import OrderIntake
from services.shared.order_signing import OrderSigner, UnsignedOrderJob
from services.shared.orders import FillReport, OrderJob
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS
from services.shared.reliable_queue import ReliableQueue
from services.shared.schemas import OrderSide, TradingMode
from services.trading.core.clock import Clock
from services.trading.market.price_book import PriceBook

log = structlog.get_logger(__name__)
CENT = Decimal("0.01")
PRICE_STEP = Decimal("0.0001")
BPS = Decimal("0.0001")
REFUSALS_COMPONENT = "paper_broker"  # how refused (unsigned) jobs are filed in engine_faults


@dataclass(frozen=True, slots=True)
class PaperBrokerSettings:
    slippage_bps: Decimal = Decimal(5)
    commission_per_order: Decimal = Decimal(0)
    starting_cash: Decimal = Decimal(10_000)


class OrderRejected(Exception):
    """The order cannot be filled; the message is the reason sent back to the engine."""


def fill_price(market: Decimal, side: OrderSide, slippage_bps: Decimal) -> Decimal:
    """Slippage always costs the trader: buys fill above the market, sells below."""
    sign = 1 if side is OrderSide.BUY else -1
    return (market * (1 + sign * slippage_bps * BPS)).quantize(PRICE_STEP, ROUND_HALF_UP)


class PaperBroker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        orders: ReliableQueue,
        fills: ReliableQueue,
        clock: Clock,
        settings: PaperBrokerSettings = PaperBrokerSettings(),
        *,
        order_signer: OrderSigner,
    ) -> None:
        self.pool = pool
        self.orders = orders
        self.fills = fills
        self.clock = clock
        self.settings = settings
        self.order_signer = order_signer  # the engine's key: a job it did not sign is never filled
        self.intake = OrderIntake("paper broker", REFUSALS_COMPONENT, pool, orders, order_signer, clock.now)
        self.prices = PriceBook(pool)
        self.heartbeat = Heartbeat()  # each pass of `run`, for /ready when it runs beside the API

    @classmethod
    def on_redis(
        cls,
        pool: asyncpg.Pool,
        redis,
        clock: Clock,
        settings: PaperBrokerSettings = PaperBrokerSettings(),
        *,
        order_signer: OrderSigner,
    ) -> PaperBroker:
        return cls(
            pool,
            ReliableQueue(redis, QUEUE_BROKER_ORDERS),
            ReliableQueue(redis, QUEUE_BROKER_FILLS),
            clock,
            settings,
            order_signer=order_signer,
        )

    async def start(self) -> None:
        """Open the account if it is new, and take back jobs a previous run left half-done."""
        await self.pool.execute(
            "INSERT INTO broker_account (id, cash) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            self.settings.starting_cash,
        )
        recovered = await self.orders.recover()
        if recovered:
            log.warning("paper broker recovered unfinished order jobs", count=recovered)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.intake.serve(stop, self.heartbeat, self.handle, self._reject_failed)
        finally:
            self.heartbeat.stopped()

    async def _reject_failed(self, message: str, error: Exception) -> None:
        await self.reject(message, f"paper broker error: {type(error).__name__}: {error}")

    async def reject(self, message: str, reason: str) -> FillReport | None:
        """Record and report a rejection for a job that could not be handled; if the job was
        recorded after all, its recorded outcome is re-sent instead. A job the engine did not
        sign is only parked: no row may carry its client order id."""
        try:
            job = OrderJob.model_validate(self.order_signer.verified(message))
        except UnsignedOrderJob as refusal:
            log.critical(
                "paper broker parked an order job the engine did not sign",
                reason=str(refusal),
                job=message[:200],
            )
            await self.orders.dead_letter(message)
            return None
        reason = reason[:500]  # an exception message can run long: its head says enough
        async with self.pool.acquire() as connection, connection.transaction():
            order_id = await record_order(connection, job, self.clock.now(), reject_reason=reason)
            if order_id is None:
                report = await self._earlier_outcome(connection, job)
            else:
                report = self._report(job, order_id, "rejected", reject_reason=reason)
        await self.fills.push(report.model_dump_json())
        await self.orders.ack(message)
        return report

    async def drain(self) -> int:
        """Handle every job waiting now; return how many (used by the demo replay and tests)."""
        return await self.intake.drain(self.handle)

    async def handle(self, message: str) -> FillReport | None:
        job = await self.intake.job_of(message)
        if job is None:
            return None
        report = await self._record(job)
        await self.fills.push(report.model_dump_json())
        await self.orders.ack(message)
        log.info(
            "paper broker",
            outcome=report.status,
            ticker=job.ticker,
            side=job.side.value,
            quantity=str(job.quantity),
            price=str(report.price),
            reason=report.reject_reason,
        )
        return report

    async def _record(self, job: OrderJob) -> FillReport:
        async with self.pool.acquire() as connection, connection.transaction():
            order_id = await record_order(connection, job, self.clock.now())
            if order_id is None:
                log.info(
                    "paper broker saw a job again and re-sent its outcome",
                    client_order_id=job.client_order_id,
                )
                return await self._earlier_outcome(connection, job)
            try:
                return await self._fill(connection, order_id, job)
            except OrderRejected as rejection:
                await connection.execute(
                    "UPDATE broker_orders SET status = 'rejected', reject_reason = $2, updated_at = $3 WHERE id = $1",
                    order_id,
                    str(rejection),
                    self.clock.now(),
                )
                return self._report(job, order_id, "rejected", reject_reason=str(rejection))

    async def _fill(self, connection: asyncpg.Connection, order_id: int, job: OrderJob) -> FillReport:
        if job.mode is TradingMode.LIVE:
            raise OrderRejected("the paper broker does not place live orders")
        now = self.clock.now()
        quote = await self.prices.quote(job.ticker, now)
        if quote is None:
            raise OrderRejected(f"no market price for {job.ticker}")
        price = fill_price(quote.price, job.side, self.settings.slippage_bps)
        fee = self.settings.commission_per_order
        cash = await connection.fetchval("SELECT cash FROM broker_account WHERE id = 1 FOR UPDATE")
        notional = (price * job.quantity).quantize(CENT, ROUND_HALF_UP)
        if job.side is OrderSide.BUY:
            if notional + fee > cash:
                raise OrderRejected(f"insufficient cash: needs {notional + fee}, account has {cash}")
            new_cash = cash - notional - fee
        else:
            held = await connection.fetchval(
                """SELECT coalesce(sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END), 0)
                   FROM broker_fills WHERE ticker = $1""",
                job.ticker,
            )
            if job.quantity > held:
                raise OrderRejected(f"cannot sell {job.quantity} {job.ticker}: account holds {held}")
            new_cash = cash + notional - fee
        fill_id = await connection.fetchval(
            """INSERT INTO broker_fills (order_id, client_order_id, ticker, side, quantity, price, fee, filled_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            order_id,
            job.client_order_id,
            job.ticker,
            job.side.value,
            job.quantity,
            price,
            fee,
            now,
        )
        await connection.execute(
            "UPDATE broker_account SET cash = $1, updated_at = $2 WHERE id = 1", new_cash, now
        )
        await connection.execute(
            "UPDATE broker_orders SET status = 'filled', updated_at = $2 WHERE id = $1", order_id, now
        )
        return self._report(job, order_id, "filled", price=price, fee=fee, fill_id=fill_id)

    async def _earlier_outcome(self, connection: asyncpg.Connection, job: OrderJob) -> FillReport:
        order = await connection.fetchrow(
            "SELECT * FROM broker_orders WHERE client_order_id = $1", job.client_order_id
        )
        fill = await connection.fetchrow("SELECT * FROM broker_fills WHERE order_id = $1", order["id"])
        if fill is None:
            return self._report(
                job, order["id"], "rejected", reject_reason=order["reject_reason"] or "order was not filled"
            )
        return self._report(
            job,
            order["id"],
            "filled",
            price=fill["price"],
            fee=fill["fee"],
            fill_id=fill["id"],
            at=fill["filled_at"],
        )

    def _report(
        self,
        job: OrderJob,
        order_id: int,
        status: str,
        *,
        price: Decimal | None = None,
        fee: Decimal = Decimal(0),
        fill_id: int | None = None,
        reject_reason: str | None = None,
        at=None,
    ) -> FillReport:
        return FillReport(
            client_order_id=job.client_order_id,
            trading_decision_id=job.trading_decision_id,
            broker_order_id=order_id,
            ticker=job.ticker,
            side=job.side,
            reason=job.reason,
            status=status,
            quantity=job.quantity,
            price=price,
            fee=fee,
            reject_reason=reject_reason,
            fill_id=fill_id,
            at=at or self.clock.now(),
        )
