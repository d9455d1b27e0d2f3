"""Which failures mean "a server is down or restarting" rather than "this job is bad".

A job that meets one of these waits and is retried (never rejected, never counted against
it); any other error is the job's own and, after a few tries, ends it with a reason.
"""

from __future__ import annotations

import asyncio

import asyncpg
import redis.exceptions

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
