"""How a broker adapter takes the engine's order jobs off `stonks:queue:broker_orders`: the
rules the paper broker and the Alpaca broker share, so that both lose nothing and double nothing.

- A job is read through a `ReliableQueue`: one the broker was handling when it died is handled
  again on restart, and `client_order_id` makes the second handling settle nothing twice.
- No failure ends the loop. A job that fails stays in the processing list and goes back to the
  head of the queue (the broker is the queue's only consumer). A server being down is waited
  out with a growing pause; any other failure of one job is retried up to `MAX_JOB_ATTEMPTS`
  times, then the broker rejects that job with why: retrying a defect forever would wedge every
  later order behind it.
- Only jobs the engine's outbox signed are handled (`order_signing.py`). A job without the
  signature, or whose content no longer matches it, is refused: never sent, never reported (its
  client order id, which anyone can copy, would settle a real order of the engine's), a
  critical log, a row in `engine_faults` under the broker's component, and the message parked
  in the queue's dead letters. A signed job that is not a valid `OrderJob` is parked too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
from pydantic import ValidationError

from services.shared.faults import TRANSIENT_ERRORS
from services.shared.heartbeat import Heartbeat
from services.shared.order_signing import OrderSigner, UnsignedOrderJob
from services.shared.orders import OrderJob
from services.shared.pause import pause_unless_stopped
from services.shared.reliable_queue import ReliableQueue

log = structlog.get_logger(__name__)

MAX_JOB_ATTEMPTS = 3
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0


@dataclass(frozen=True)
class OrderIntake:
    """One broker's side of the order jobs queue. `name` is how its logs call it ("paper
    broker"); `component` files its refusals in `engine_faults`; `now` is its clock."""

    name: str
    component: str
    pool: asyncpg.Pool
    orders: ReliableQueue
    signer: OrderSigner
    now: Callable[[], datetime]

    async def job_of(self, message: str) -> OrderJob | None:
        """The job `message` carries, or None once it is refused (unsigned) or parked
        (malformed): then there is nothing more to do with it."""
        try:
            content = self.signer.verified(message)
        except UnsignedOrderJob as refusal:
            await self._refuse(message, str(refusal))
            return None
        try:
            return OrderJob.model_validate(content)
        except ValidationError as exc:
            log.error(
                f"{self.name} parked a malformed order job",
                error=str(exc).splitlines()[0],
                job=message[:200],
            )
            await self.orders.dead_letter(message)
            return None

    async def serve(
        self,
        stop: asyncio.Event,
        heartbeat: Heartbeat,
        handle: Callable[[str], Awaitable[object]],
        reject: Callable[[str, Exception], Awaitable[object]],
    ) -> None:
        """`handle` each job until `stop`; `reject` one that failed `MAX_JOB_ATTEMPTS` times."""
        failures = 0  # consecutive failures of any kind: the back-off
        defects = 0  # consecutive non-transient failures of the job at the head: the bound
        while not stop.is_set():
            heartbeat.beat()
            try:
                message = await self.orders.take(timeout_seconds=0.5)
                if message is not None:
                    await self._handle_or_reject(message, defects + 1, handle, reject)
                failures = defects = 0
            except Exception as exc:  # noqa: BLE001 - the broker must outlive any one failure
                transient = isinstance(exc, TRANSIENT_ERRORS)
                failures, defects = failures + 1, defects + (0 if transient else 1)
                log.error(
                    f"{self.name} failed; the job will be retried",
                    error=f"{type(exc).__name__}: {exc}",
                    failures=failures,
                    transient=transient,
                )
                await pause_unless_stopped(
                    stop, min(BACKOFF_FIRST_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS)
                )
                await self._requeue()

    async def drain(self, handle: Callable[[str], Awaitable[object]]) -> int:
        """`handle` every job waiting now; return how many (the demo's replay and tests)."""
        handled = 0
        while (message := await self.orders.take_nowait()) is not None:
            await handle(message)
            handled += 1
        return handled

    async def _handle_or_reject(
        self,
        message: str,
        attempt: int,
        handle: Callable[[str], Awaitable[object]],
        reject: Callable[[str, Exception], Awaitable[object]],
    ) -> None:
        try:
            await handle(message)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            if attempt < MAX_JOB_ATTEMPTS:
                raise
            log.exception(f"{self.name} rejects a job it failed to handle", attempts=attempt)
            await reject(message, exc)

    async def _requeue(self) -> None:
        try:
            await self.orders.recover()
        except Exception as exc:  # noqa: BLE001 - Redis down: the next pass retries
            log.warning(f"{self.name} could not requeue its unfinished job yet", error=str(exc))

    async def _refuse(self, message: str, why: str) -> None:
        excerpt = message[:200]
        log.critical(
            f"{self.name} refused an order job the engine did not sign; it may be forged",
            reason=why,
            job=excerpt,
        )
        await self.pool.execute(
            "INSERT INTO engine_faults (component, error, occurred_at) VALUES ($1, $2, $3)",
            self.component,
            f"refused an order job: {why}: {excerpt}",
            self.now(),
        )
        await self.orders.dead_letter(message)
