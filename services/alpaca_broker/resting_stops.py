"""Protective stops resting at Alpaca (issue 14): if the engine dies, the broker still
protects each position.

The engine keeps its stop levels in PostgreSQL as always (`position_stop_levels`), and its
own stop checks stay the first line. This module keeps, for every held position, one sell
stop order resting at Alpaca (GTC) that matches them: placed when a position has a stop,
replaced when the engine trails or tightens it (or the quantity changes), cancelled when the
position closes or an exit of the engine's is about to sell the shares. The engine does not
tell the broker anything new: the broker syncs from the engine's state, so a broker that
died, a lost message or a restart heals at the next sync.

- **One order per state.** Each resting stop is a `broker_orders` row (`order_type` `stop`,
  `time_in_force` `gtc`), recorded *before* the call with a client order id made of the
  position and a version (`stop-<position>-<n>`): a call that times out and is made again
  meets Alpaca's duplicate refusal and is followed, never doubled.
- **Its fill is a fill like any other**: reported once with reason `stop_loss` (or
  `trailing_stop`), through the same `_settle` as market orders. Rows we asked to cancel or
  replace are `cancelling` until Alpaca says how they ended: a fill racing the request is
  still reported; an order ended unfilled by us is `cancelled` and reported to nobody. A stop
  Alpaca or the owner ended unfilled (expired, cancelled in the app) is reported as a
  rejection (the owner hears of it) and placed again at the next sync.
- **Whole shares, prices to the cent below.** Alpaca takes no fractional quantity in a GTC
  order, so the stop covers the whole shares; a fractional remainder is protected by the
  engine's own checks only. The stop price is rounded down to Alpaca's tick (a cent; 0.0001
  under $1): the broker's stop never fires before the engine's own check would.
- **A sale first frees the shares.** Alpaca holds a resting stop's shares: a market sell of
  the same shares is refused. Before an exit's sale is sent, the ticker's stop is cancelled
  (`release`); if it turned out to have filled, the sale is refused by us ("its resting stop
  filled first"), not sent. No stop is placed while an exit of the ticker is working.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import structlog
from alpaca.trading.enums import OrderStatus
from alpaca.trading.models import Order

from services.alpaca_broker.api import BrokerRejected
from services.alpaca_broker.outcomes import FINISHED, decimal_of
from services.shared.schemas import OrderReason

log = structlog.get_logger(__name__)
SYNC_SECONDS = 5.0
REFUSED_RETRY = timedelta(minutes=5)  # a stop Alpaca refused is not asked for again sooner
CANCEL_WAIT_SECONDS = 5.0
STOP_NAMESPACE = uuid.UUID("5f0c2e1a-6b9d-4e3f-8a71-2c4d9e0b7a36")


@dataclass(frozen=True, slots=True)
class WantedStop:
    ticker: str
    quantity: int
    stop_price: Decimal
    position_key: str
    reason: OrderReason


def broker_stop_price(price: Decimal) -> Decimal:
    """Alpaca's tick for a stop price: a cent from $1 up, 0.0001 below; rounded down."""
    tick = Decimal("0.01") if price >= 1 else Decimal("0.0001")
    return price.quantize(tick, rounding=ROUND_DOWN)


def wanted_stop(row) -> WantedStop | None:
    """The resting stop a held position should have, or None (no whole share to protect)."""
    whole = int(row["quantity"])
    price = broker_stop_price(row["stop_loss_price"])
    if whole < 1 or price <= 0:
        return None
    decision = row["opened_by_decision"]
    key = (
        decision.hex[:20]
        if decision is not None
        else f"p{row['levels_id']}t{int(row['created_at'].timestamp())}"
    )
    reason = OrderReason.TRAILING_STOP if row["trailing_stop_active"] else OrderReason.STOP_LOSS
    return WantedStop(row["ticker"], whole, price, key, reason)


class RestingStops:
    def __init__(self, broker, *, sync_seconds: float = SYNC_SECONDS) -> None:
        self.broker = broker
        self.pool, self.api, self.clock = broker.pool, broker.api, broker.clock
        self.sync_seconds = sync_seconds
        self.lock = asyncio.Lock()  # one change at a time: the sync and a sale's release
        self.wake = asyncio.Event()
        self._refused: dict[str, tuple[int, Decimal, datetime]] = {}
        self.syncs = 0

    async def run_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - the next sync tries again
                log.warning("resting stops sync failed", error=f"{type(exc).__name__}: {exc}")
            self.wake.clear()
            waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, timeout=self.sync_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()

    # -- the sync -----------------------------------------------------------------------------

    async def sync(self) -> int:
        """Bring the resting stops in line with the engine's positions; return the changes made."""
        async with self.lock:
            self.syncs += 1
            wanted = {}
            for row in await self.pool.fetch(_WANTED):
                stop = wanted_stop(row)
                if stop is not None:
                    wanted[stop.ticker] = stop
            resting: dict[str, list] = {}
            for row in await self.pool.fetch(_RESTING):
                resting.setdefault(row["ticker"], []).append(row)
            changes = 0
            for ticker in sorted({*wanted, *resting}):
                changes += await self._sync_ticker(wanted.get(ticker), resting.get(ticker, []))
            return changes

    async def _sync_ticker(self, wanted: WantedStop | None, rows: list) -> int:
        if any(r["status"] == "cancelling" for r in rows):
            for row in rows:  # a request we made that did not finish (a restart): finish it
                if row["status"] == "cancelling":
                    await self._cancel(row)
            return 1
        working = rows[0] if rows else None
        for extra in rows[1:]:  # never two stops for one position
            await self._cancel(extra)
        if working is not None and working["broker_order_ref"] is None:
            working = await self._submitted(working)
        if wanted is None:
            if working is None:
                return 0
            await self._cancel(working)
            return 1
        if working is None:
            return await self._place(wanted)
        if working["quantity"] == wanted.quantity and working["stop_price"] == wanted.stop_price:
            return 0
        return await self._replace(working, wanted)

    def _refused_lately(self, wanted: WantedStop) -> bool:
        refused = self._refused.get(wanted.ticker)
        return (
            refused is not None
            and refused[:2] == (wanted.quantity, wanted.stop_price)
            and self.clock.now() - refused[2] < REFUSED_RETRY
        )

    async def _record(self, wanted: WantedStop) -> str:
        """The row first (`accepted`), then the call: a retry of the call is a duplicate."""
        version = await self.pool.fetchval(
            "SELECT count(*) + 1 FROM broker_orders WHERE client_order_id LIKE $1",
            f"stop-{wanted.position_key}-%",
        )
        client_order_id = f"stop-{wanted.position_key}-{version}"
        await self.pool.execute(
            """INSERT INTO broker_orders (client_order_id, job_id, trading_decision_id, ticker, side, quantity,
                   order_type, time_in_force, mode, reason, status, stop_price, created_at, updated_at)
               VALUES ($1, $2, $3, $4, 'sell', $5, 'stop', 'gtc', $6, $7, 'accepted', $8, $9, $9)""",
            client_order_id,
            uuid.uuid4(),
            uuid.uuid5(STOP_NAMESPACE, client_order_id),  # no decision made it: named after itself
            wanted.ticker,
            wanted.quantity,
            self.broker.mode.value,
            wanted.reason.value,
            wanted.stop_price,
            self.clock.now(),
        )
        return client_order_id

    async def _place(self, wanted: WantedStop) -> int:
        if self._refused_lately(wanted):
            return 0
        client_order_id = await self._record(wanted)
        try:
            order = await self.api.submit_stop(
                client_order_id, wanted.ticker, wanted.quantity, wanted.stop_price
            )
        except BrokerRejected as refusal:
            if not refusal.duplicate:
                await self._refused_now(client_order_id, wanted, refusal.reason)
                return 0
            order = await self.api.order_by_client_id(client_order_id)
        await self._set_ref(client_order_id, order)
        log.info(
            "resting stop placed at the broker",
            ticker=wanted.ticker,
            quantity=wanted.quantity,
            stop_price=str(wanted.stop_price),
            client_order_id=client_order_id,
        )
        return 1

    async def _replace(self, row, wanted: WantedStop) -> int:
        if self._refused_lately(wanted):
            return 0
        await self._set_status(row["client_order_id"], "cancelling", None)
        client_order_id = await self._record(wanted)
        try:
            order = await self.api.replace_stop(
                row["broker_order_ref"], client_order_id, wanted.quantity, wanted.stop_price
            )
        except BrokerRejected as refusal:
            # Not replaceable (it filled, or ended) or refused: the new row never reached
            # Alpaca; the old one is followed to its end (a fill is reported).
            await self._set_status(client_order_id, "cancelled", f"replace refused: {refusal.reason}")
            with contextlib.suppress(BrokerRejected):
                await self.broker.apply_order(await self.api.order_by_id(row["broker_order_ref"]))
            if not refusal.not_found and refusal.status != 422:
                self._refused[wanted.ticker] = (wanted.quantity, wanted.stop_price, self.clock.now())
            log.warning("resting stop not replaced", ticker=wanted.ticker, reason=refusal.reason)
            return 0
        await self._set_ref(client_order_id, order)
        await self._set_status(row["client_order_id"], "cancelled", f"replaced by {client_order_id}")
        log.info(
            "resting stop replaced at the broker",
            ticker=wanted.ticker,
            quantity=wanted.quantity,
            stop_price=str(wanted.stop_price),
            previous=str(row["stop_price"]),
            client_order_id=client_order_id,
        )
        return 1

    async def _cancel(self, row) -> Order | None:
        """Cancel one resting stop and follow it to its end (a fill racing it is reported).
        Returns the order as Alpaca ended it, or None when Alpaca never had it."""
        await self._set_status(row["client_order_id"], "cancelling", None)
        ref = row["broker_order_ref"]
        if ref is None:
            try:
                ref = str((await self.api.order_by_client_id(row["client_order_id"])).id)
            except BrokerRejected as refusal:
                if not refusal.not_found:
                    raise
                await self._set_status(row["client_order_id"], "cancelled", "never reached the broker")
                return None
        with contextlib.suppress(BrokerRejected):  # already ended (filled, cancelled): followed below
            await self.api.cancel(ref)
        order = await self.api.order_by_id(ref)
        deadline = asyncio.get_running_loop().time() + CANCEL_WAIT_SECONDS
        while order.status not in FINISHED and order.status is not OrderStatus.REPLACED:
            if asyncio.get_running_loop().time() > deadline:
                return order  # still pending cancel: the next sync follows it
            await asyncio.sleep(0.2)
            order = await self.api.order_by_id(ref)
        await self.broker.apply_order(order)
        return order

    async def _submitted(self, row):
        """A row recorded before a call whose answer was lost: look it up, or place it now."""
        try:
            order = await self.api.order_by_client_id(row["client_order_id"])
        except BrokerRejected as refusal:
            if not refusal.not_found:
                raise
            try:
                order = await self.api.submit_stop(
                    row["client_order_id"], row["ticker"], int(row["quantity"]), row["stop_price"]
                )
            except BrokerRejected as refused:
                await self._set_status(row["client_order_id"], "cancelled", f"refused: {refused.reason}")
                return None
        await self._set_ref(row["client_order_id"], order)
        return await self.pool.fetchrow(
            "SELECT * FROM broker_orders WHERE client_order_id = $1", row["client_order_id"]
        )

    # -- a sale of the engine's --------------------------------------------------------------

    async def release(self, ticker: str) -> bool:
        """Free the ticker's shares for a sale: cancel its resting stop. True when the stop
        had filled first (the shares are sold already)."""
        async with self.lock:
            filled = False
            for row in await self.pool.fetch(_RESTING_OF, ticker):
                order = await self._cancel(row)
                filled |= order is not None and (decimal_of(order.filled_qty) or 0) > 0
            return filled

    # -- Alpaca's word on one of them --------------------------------------------------------

    async def _refused_now(self, client_order_id: str, wanted: WantedStop, reason: str) -> None:
        self._refused[wanted.ticker] = (wanted.quantity, wanted.stop_price, self.clock.now())
        await self._set_status(client_order_id, "rejected", reason)
        log.error(
            "alpaca refused a resting stop; the engine's own stop checks still protect the position",
            ticker=wanted.ticker,
            reason=reason,
        )

    async def _set_ref(self, client_order_id: str, order: Order) -> None:
        await self.pool.execute(
            "UPDATE broker_orders SET broker_order_ref = $2, updated_at = $3 WHERE client_order_id = $1",
            client_order_id,
            str(order.id),
            self.clock.now(),
        )

    async def _set_status(self, client_order_id: str, status: str, reason: str | None) -> None:
        await self.pool.execute(
            """UPDATE broker_orders SET status = $2, reject_reason = coalesce($3, reject_reason), updated_at = $4
               WHERE client_order_id = $1 AND status IN ('accepted', 'cancelling')""",
            client_order_id,
            status,
            None if reason is None else reason[:500],
            self.clock.now(),
        )


# Held positions with a stop, as the engine's books say, unless an exit of theirs is working.
_WANTED = """
WITH held AS (
    SELECT ticker, sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) AS quantity
    FROM broker_fills GROUP BY ticker
    HAVING sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) > 0
)
SELECT h.ticker, h.quantity, s.id AS levels_id, s.stop_loss_price, s.trailing_stop_active,
       s.opened_by_decision, s.created_at
FROM held h JOIN position_stop_levels s ON s.ticker = h.ticker AND s.active
WHERE NOT EXISTS (SELECT 1 FROM broker_orders b WHERE b.ticker = h.ticker AND b.side = 'sell'
                  AND b.order_type <> 'stop' AND b.status = 'accepted')
"""
_RESTING = """
SELECT * FROM broker_orders WHERE order_type = 'stop' AND status IN ('accepted', 'cancelling') ORDER BY id DESC
"""
_RESTING_OF = """
SELECT * FROM broker_orders WHERE order_type = 'stop' AND status IN ('accepted', 'cancelling') AND ticker = $1
"""
