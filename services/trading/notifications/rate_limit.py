"""Per-channel hourly caps on alerts (seed task 16.1, Property 30; docs/contracts.md section 5: 10 SMS
and 20 emails an hour, webhooks 30 by our choice).

A Redis counter per channel per UTC clock hour (`notification_rate_key`): INCR and EXPIRE
in one MULTI, so processes sharing Redis share the cap. The window is the fixed clock hour
the seed's "counters with hourly TTL" describe, not a sliding one. If Redis cannot be
reached, an in-process counter keyed the same way keeps enforcing the cap: a Redis outage
must neither silence alerts nor let a loop gone wrong text the owner hundreds of times.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from services.shared.redis_keys import notification_rate_key
from services.shared.schemas import NotificationChannel
from services.trading.core.trading_window import require_aware

log = structlog.get_logger(__name__)

# The key names its hour, so the TTL only has to outlive it; the slack covers clock skew
# between processes.
COUNTER_TTL = timedelta(hours=2)
FALLBACK_MAX_KEYS = 1000


def hour_bucket(now: datetime) -> str:
    """The UTC clock hour `now` falls in, as `YYYYMMDDHH`."""
    return require_aware(now, "now").astimezone(UTC).strftime("%Y%m%d%H")


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    count: int
    limit: int
    reason: str


def decide(channel: NotificationChannel, count: int, limit: int) -> RateDecision:
    """The `count`-th send of this hour is allowed while it is within `limit`."""
    if count <= limit:
        return RateDecision(True, count, limit, f"{channel} send {count} of {limit} this hour")
    return RateDecision(False, count, limit, f"{channel} rate limit of {limit} per hour reached")


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, *, timeout_seconds: float = 2.0) -> None:
        self._redis = redis
        self._timeout = timeout_seconds
        self._fallback: dict[str, int] = {}

    async def acquire(self, channel: NotificationChannel, limit: int, now: datetime) -> RateDecision:
        """Count one send on `channel` in `now`'s hour; say whether it may go out."""
        key = notification_rate_key(str(channel), hour_bucket(now))
        try:
            count = await asyncio.wait_for(self._incr(key), self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("notification_rate_limit_redis_unavailable", channel=str(channel), error=str(exc))
            count = self._incr_fallback(key)
        return decide(channel, count, limit)

    async def _incr(self, key: str) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, int(COUNTER_TTL.total_seconds()))
            count, _ = await pipe.execute()
        return int(count)

    def _incr_fallback(self, key: str) -> int:
        if len(self._fallback) >= FALLBACK_MAX_KEYS:  # old hours are never asked again
            self._fallback.clear()
        self._fallback[key] = self._fallback.get(key, 0) + 1
        return self._fallback[key]
