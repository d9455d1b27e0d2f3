"""Decided and sent as one fact: the transactional outbox (docs/contracts.md section 4).

A decision and its order jobs are written in one transaction; only then are jobs delivered to
the broker queue and marked delivered. If the process dies between commit and delivery, the
next delivery pass (every tick, and at start) sends what is still undelivered. A job can thus
reach the queue twice (delivered, then the process died before marking it), which is safe:
its `client_order_id` is deterministic, and the broker fills a client order id once. Jobs are
signed as they are pushed (`services/shared/order_signing.py`): the broker fills nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from services.shared.order_signing import OrderSigner
from services.shared.orders import OrderJob, Tranche, client_order_id
from services.shared.reliable_queue import ReliableQueue
from services.shared.schemas import OrderSide, TradingMode
from services.trading.core.decision import DecisionOutcome, OrderIntent
from services.trading.core.fill_application import StopPlan
from services.trading.core.models import TradingDecision
from services.trading.core.tranche_check import Cut, Refusal

log = structlog.get_logger(__name__)

_INSERT_DECISION = """
INSERT INTO trading_decisions (id, recommendation_id, decision, side, skip_reason, ticker, computed_position_size,
    computed_share_quantity, risk_tier_at_decision, portfolio_heat_at_decision, active_pool_at_decision,
    reserve_pool_at_decision, circuit_breaker_status, correlation_check_result, sector_exposure_check_result,
    earnings_proximity_flag, is_micro_trade, decision_trace, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT DO NOTHING
"""

_INSERT_JOB = """
INSERT INTO order_outbox (job_id, client_order_id, trading_decision_id, ticker, side, quantity, reason,
    tranche_index, tranche_count, stop_plan, payload, not_before)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""


CANCEL_BUYS_ON_SELL = "a sell of the ticker was decided before this entry was sent"
# Refusals of the decision's own data (PostgreSQL's data, integrity and size-limit classes,
# the order job's validation), as opposed to a server or connection fault.
_DATA_REFUSALS = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
    ValueError,
    TypeError,
    ArithmeticError,
)


class DecisionRefused(Exception):
    """The decision cannot be stored as it is (issue 12): writing it again would fail again,
    unlike a fault of the server or the connection, which the next tick retries."""


def _decision_row(d: TradingDecision) -> tuple[Any, ...]:
    return (
        d.id,
        d.recommendation_id,
        d.decision.value,
        d.side,
        d.skip_reason,
        d.ticker,
        d.computed_position_size,
        d.computed_share_quantity,
        d.risk_tier_at_decision.value,
        d.portfolio_heat_at_decision,
        d.active_pool_at_decision,
        d.reserve_pool_at_decision,
        d.circuit_breaker_status,
        dict(d.correlation_check_result),
        dict(d.sector_exposure_check_result),
        d.earnings_proximity_flag,
        d.is_micro_trade,
        dict(d.decision_trace),
        d.created_at,
    )


def order_job(decision_id: uuid.UUID, intent: OrderIntent, mode: TradingMode, now: datetime) -> OrderJob:
    tranche = (
        Tranche(index=intent.tranche_index, count=intent.tranche_count, parent_decision_id=decision_id)
        if intent.tranche_count > 1
        else None
    )
    return OrderJob(
        job_id=uuid.uuid4(),
        client_order_id=client_order_id(decision_id, intent.tranche_index),
        trading_decision_id=decision_id,
        ticker=intent.ticker,
        side=intent.side,
        quantity=intent.quantity,
        mode=mode,
        reason=intent.reason,
        tranche=tranche,
        created_at=now,
    )


def stop_plan(outcome: DecisionOutcome, confidence: Any) -> dict[str, Any] | None:
    """What the fill handler needs to place the stop once the entry fills at its real price."""
    if outcome.stops is None:
        return None
    levels = outcome.stops
    return {
        "atr": str(levels.atr_value),
        "atr_multiplier": str(levels.atr_multiplier),
        "reward_risk_ratio": str(levels.reward_risk_ratio),
        "confidence": str(confidence),
        "is_micro_trade": outcome.decision.is_micro_trade,
    }


def stored_plan(plan: dict[str, Any] | None) -> StopPlan | None:
    """A stop plan as `stop_plan` stored it, read back."""
    if plan is None:
        return None
    return StopPlan(
        Decimal(plan["atr"]),
        Decimal(plan["atr_multiplier"]),
        Decimal(plan["reward_risk_ratio"]),
        Decimal(plan["confidence"]),
        bool(plan.get("is_micro_trade", False)),
    )


async def record_decision(
    connection: asyncpg.Connection, outcome: DecisionOutcome, mode: TradingMode, confidence: Any = None
) -> bool:
    """Write the decision and its jobs in one transaction. Returns False (and writes nothing)
    when the recommendation already has a decision: the database's unique index is the last
    word on "decided once", whatever Redis remembers. Raises `DecisionRefused` (and writes
    nothing) when PostgreSQL or the order job refuses the decision's data."""
    try:
        return await _write_decision(connection, outcome, mode, confidence)
    except _DATA_REFUSALS as exc:
        raise DecisionRefused(f"{type(exc).__name__}: {exc}") from exc


async def _write_decision(
    connection: asyncpg.Connection, outcome: DecisionOutcome, mode: TradingMode, confidence: Any
) -> bool:
    d = outcome.decision
    async with connection.transaction():
        status = await connection.execute(_INSERT_DECISION, *_decision_row(d))
        if status.endswith(" 0"):
            return False
        plan = stop_plan(outcome, confidence)
        await _cancel_buys_sold_by(connection, outcome, d.created_at)
        for intent in outcome.orders:
            job = order_job(d.id, intent, mode, d.created_at)
            await connection.execute(
                _INSERT_JOB,
                job.job_id,
                job.client_order_id,
                d.id,
                intent.ticker,
                intent.side.value,
                intent.quantity,
                intent.reason.value,
                intent.tranche_index,
                intent.tranche_count,
                plan,
                job.model_dump(mode="json"),
                intent.not_before,
            )
    return True


async def _cancel_buys_sold_by(
    connection: asyncpg.Connection, outcome: DecisionOutcome, now: datetime
) -> None:
    """A sell (exit, sell signal, trim) ends the entry in progress: its unsent tranches must
    not buy the ticker back."""
    for ticker in {o.ticker for o in outcome.orders if o.side is OrderSide.SELL}:
        status = await connection.execute(
            """UPDATE order_outbox SET cancelled_at = $2, cancel_reason = $3
               WHERE ticker = $1 AND side = 'buy' AND delivered_at IS NULL AND cancelled_at IS NULL""",
            ticker,
            now,
            CANCEL_BUYS_ON_SELL,
        )
        if not status.endswith(" 0"):
            log.warning("unsent entries cancelled by a sell", ticker=ticker, count=status.split()[-1])


async def deliver_due(
    pool: asyncpg.Pool,
    queue: ReliableQueue,
    signer: OrderSigner,
    now: datetime,
    may_send: Callable[[asyncpg.Record], Awaitable[Refusal | Cut | None]] | None = None,
) -> int:
    """Push every undelivered job whose time has come, sells first (exits keep priority),
    each signed so the broker knows it came from here; mark each delivered after the push.
    `await may_send(row)` (the row has the decision's time as `decided_at`) returns None to send,
    `WAIT` to keep the job for later, a `Refusal` to cancel it and the rest of its entry, or a
    `Cut` to send it with fewer shares (the row says so before the push: a job pushed again
    after a crash is re-checked, and the broker fills its client order id once)."""
    rows = await pool.fetch(
        """SELECT o.*, d.created_at AS decided_at FROM order_outbox o
           JOIN trading_decisions d ON d.id = o.trading_decision_id
           WHERE o.delivered_at IS NULL AND o.cancelled_at IS NULL AND o.not_before <= $1
           ORDER BY o.side = 'sell' DESC, o.not_before, o.id""",
        now,
    )
    sent = 0
    for row in rows:
        verdict = await may_send(row) if may_send else None
        if verdict is not None and verdict.reason is None:  # WAIT
            continue
        job = OrderJob.model_validate(row["payload"])
        if isinstance(verdict, Cut):
            job = await _cut(pool, row, job, verdict)
        elif verdict is not None:
            await cancel_remaining(pool, row["trading_decision_id"], verdict.reason, now)
            continue
        await queue.push(signer.sign(job))
        await pool.execute("UPDATE order_outbox SET delivered_at = $2 WHERE id = $1", row["id"], now)
        sent += 1
    return sent


async def _cut(pool: asyncpg.Pool, row: asyncpg.Record, job: OrderJob, cut: Cut) -> OrderJob:
    job = job.model_copy(update={"quantity": cut.quantity})
    await pool.execute(
        "UPDATE order_outbox SET quantity = $2, payload = $3 WHERE id = $1",
        row["id"],
        cut.quantity,
        job.model_dump(mode="json"),
    )
    log.warning(
        "tranche cut to fit",
        ticker=row["ticker"],
        decided=str(row["quantity"]),
        sent=str(cut.quantity),
        reason=cut.reason,
    )
    return job


async def cancel_remaining(pool: asyncpg.Pool, decision_id: uuid.UUID, reason: str, now: datetime) -> int:
    status = await pool.execute(
        """UPDATE order_outbox SET cancelled_at = $2, cancel_reason = $3
           WHERE trading_decision_id = $1 AND delivered_at IS NULL AND cancelled_at IS NULL""",
        decision_id,
        now,
        reason,
    )
    cancelled = int(status.split()[-1])
    if cancelled:
        log.warning(
            "remaining tranches cancelled", decision_id=str(decision_id), count=cancelled, reason=reason
        )
    return cancelled


async def cancel_later_tranches(pool: asyncpg.Pool, reason: str, now: datetime) -> int:
    """Cancel every unsent later tranche (index 2 and up) of every entry: a stopping engine
    will not be there to re-check them when they fall due (seed task 13.1)."""
    status = await pool.execute(
        """UPDATE order_outbox SET cancelled_at = $1, cancel_reason = $2
           WHERE side = 'buy' AND tranche_index > 1 AND delivered_at IS NULL AND cancelled_at IS NULL""",
        now,
        reason,
    )
    cancelled = int(status.split()[-1])
    if cancelled:
        log.warning("later tranches cancelled", count=cancelled, reason=reason)
    return cancelled


async def open_exit_exists(pool: asyncpg.Pool, ticker: str) -> bool:
    """A sell for `ticker` is already on its way (not yet reported filled or rejected)."""
    return bool(
        await pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM order_outbox WHERE ticker = $1 AND side = 'sell'
                          AND broker_status IS NULL AND cancelled_at IS NULL)""",
            ticker,
        )
    )
