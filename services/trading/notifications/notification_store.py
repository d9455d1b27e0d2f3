"""The notification log in PostgreSQL: one `notifications` row per message and channel, one
`notification_attempts` row per try, and the claims of scheduled reports (020 migration).

All SQL of the notification service is here (STYLE principle 8). Times come from the
service's clock, not `now()`, so simulated time and the rate-limit hour agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg

from services.shared.schemas import DeliveryStatus, NotificationChannel, NotificationEventType


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    channel: NotificationChannel
    event_type: NotificationEventType
    message: str
    delivery_status: DeliveryStatus
    created_at: datetime
    retry_count: int = 0
    error_message: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try: `attempt` 1 is the first send, 2.. are retries."""

    notification_id: int
    attempt: int
    delivered: bool
    error_message: str | None
    started_at: datetime
    finished_at: datetime


class NotificationStore(Protocol):
    async def insert(self, record: NotificationRecord) -> int: ...

    async def record_attempt(self, attempt: AttemptRecord, final_status: DeliveryStatus) -> None: ...

    async def claim_report(self, kind: NotificationEventType, period: str, at: datetime) -> bool: ...

    async def last_report_period(self, kind: NotificationEventType) -> str | None: ...


class PostgresNotificationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, record: NotificationRecord) -> int:
        return await self._pool.fetchval(
            """INSERT INTO notifications (channel, event_type, message, delivery_status, retry_count,
                                          error_message, created_at, delivered_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            str(record.channel),
            str(record.event_type),
            record.message,
            str(record.delivery_status),
            record.retry_count,
            record.error_message,
            record.created_at,
            record.delivered_at,
        )

    async def record_attempt(self, attempt: AttemptRecord, final_status: DeliveryStatus) -> None:
        """Log the try and bring its message row up to date, together. A delivered retry keeps
        the last error on the row: "delivered after 2 retries, last error X" is worth seeing."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO notification_attempts (notification_id, attempt, outcome, error_message,
                                                      started_at, finished_at)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                attempt.notification_id,
                attempt.attempt,
                "delivered" if attempt.delivered else "failed",
                attempt.error_message,
                attempt.started_at,
                attempt.finished_at,
            )
            await conn.execute(
                """UPDATE notifications
                   SET delivery_status = $2, retry_count = $3, error_message = COALESCE($4, error_message),
                       delivered_at = CASE WHEN $5 THEN $6::timestamptz END
                   WHERE id = $1""",
                attempt.notification_id,
                str(final_status),
                attempt.attempt - 1,
                attempt.error_message,
                attempt.delivered,
                attempt.finished_at,
            )

    async def claim_report(self, kind: NotificationEventType, period: str, at: datetime) -> bool:
        """True for the one caller that claims this report; False if it was already claimed."""
        claimed = await self._pool.fetchval(
            """INSERT INTO notification_report_runs (kind, period, claimed_at) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING RETURNING true""",
            str(kind),
            period,
            at,
        )
        return bool(claimed)

    async def last_report_period(self, kind: NotificationEventType) -> str | None:
        # Periods of one kind sort as text in time order ('2026-03-06', '2026-W10').
        return await self._pool.fetchval(
            "SELECT max(period) FROM notification_report_runs WHERE kind = $1", str(kind)
        )
