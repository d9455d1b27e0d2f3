"""An order job's row in `broker_orders`, written the same way by every broker.

The paper broker and the Alpaca broker both record a job's order before they act on it, keyed
by its `client_order_id`: a job handled twice (a restart, a job pushed twice) finds the row its
first handling wrote, and the broker goes on from what that row says.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.shared.orders import OrderJob


async def record_order(
    connection: asyncpg.Connection,
    job: OrderJob,
    at: datetime,
    *,
    reject_reason: str | None = None,
) -> int | None:
    """Record `job`'s order, `accepted`, or `rejected` with `reject_reason`; return its new row's
    id, or None when an order with its client order id is recorded already (left as it is)."""
    return await connection.fetchval(
        """INSERT INTO broker_orders (client_order_id, job_id, trading_decision_id, ticker, side, quantity,
               order_type, time_in_force, mode, reason, status, reject_reason, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
           ON CONFLICT (client_order_id) DO NOTHING RETURNING id""",
        job.client_order_id,
        job.job_id,
        job.trading_decision_id,
        job.ticker,
        job.side.value,
        job.quantity,
        job.order_type,
        job.time_in_force,
        job.mode.value,
        job.reason.value,
        "accepted" if reject_reason is None else "rejected",
        reject_reason,
        at,
    )
