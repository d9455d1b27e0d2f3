"""Property 30 (seed task 16.2): at most 10 SMS and 20 emails are delivered per hour; the
excess is recorded as `rate_limited`. Checked against an independent count, with the real
Redis counters and the real notification log."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.shared.redis_keys import notification_rate_key
from services.shared.schemas import NotificationChannel as C
from services.trading.core.clock import SimulatedClock
from services.trading.notifications.rate_limit import RateLimiter, decide, hour_bucket
from services.trading.notifications.settings import NotificationSettings

from .conftest import FAST, RecordingChannel, breaker_event, free_port, make_service

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 6, 14, 0, tzinfo=UTC)
SPEC_LIMITS = {C.SMS: 10, C.EMAIL: 20, C.WEBHOOK: 30, C.TELEGRAM: 30}

requests = st.lists(st.integers(0, 2 * 60 - 1), max_size=70)  # minute of each request over two clock hours
limits = st.one_of(st.just(SPEC_LIMITS), st.fixed_dictionaries({c: st.integers(0, 25) for c in C}))
channel_sets = st.sets(st.sampled_from(list(C)), min_size=1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=requests, limit=limits, enabled=channel_sets)
async def test_property_30_rate_limits_per_channel_per_hour(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, minutes: list[int], limit: dict, enabled: set
) -> None:
    # Fresh counters and log for each example: fixtures are set up once per test, not per example.
    await redis_client.flushdb()
    await pool.execute("TRUNCATE notifications RESTART IDENTITY CASCADE")
    clock = SimulatedClock(START)
    channels = {c: RecordingChannel(c, clock) for c in enabled}
    owner = NotificationSettings(
        sms_enabled=C.SMS in enabled,
        sms_phone_number="+15555550100",
        email_enabled=C.EMAIL in enabled,
        email_recipients=("me@example.com",),
        webhook_enabled=C.WEBHOOK in enabled,
        sms_rate_limit_per_hour=limit[C.SMS],
        email_rate_limit_per_hour=limit[C.EMAIL],
        webhook_rate_limit_per_hour=limit[C.WEBHOOK],
        telegram_enabled=C.TELEGRAM in enabled,
        telegram_rate_limit_per_hour=limit[C.TELEGRAM],
    )
    service = make_service(pool, redis_client, clock, channels, settings=owner, policy=FAST)
    await service.start()
    for minute in sorted(set(minutes)):
        clock.set(START + timedelta(minutes=minute))
        for _ in range(minutes.count(minute)):
            service.notify(breaker_event(clock.now()))
        await service.drain(timeout=10)
    await service.stop()

    # The independent count: requests per clock hour, the first `limit` of each go out.
    asked = Counter(minute // 60 for minute in minutes)
    stored = Counter(
        (r["channel"], r["hour"], r["delivery_status"])
        for r in await pool.fetch(
            "SELECT channel, extract(hour FROM created_at AT TIME ZONE 'UTC')::int - 14 AS hour, delivery_status "
            "FROM notifications"
        )
    )
    for channel in enabled:
        received = Counter((at - START) // timedelta(hours=1) for _, at in channels[channel].received)
        for hour in (0, 1):
            expected = min(asked[hour], limit[channel])
            assert received[hour] == expected <= limit[channel]
            assert stored[(str(channel), hour, "delivered")] == expected
            assert stored[(str(channel), hour, "rate_limited")] == asked[hour] - expected
    assert not any(status == "failed" for _, _, status in stored)


def test_the_counter_is_per_channel_per_utc_clock_hour() -> None:
    assert hour_bucket(datetime(2026, 3, 6, 9, 59, 59, tzinfo=UTC)) == "2026030609"
    new_york = datetime(2026, 3, 6, 4, 0, tzinfo=UTC).astimezone(SimulatedClock(START).now().tzinfo)
    assert hour_bucket(new_york) == "2026030604"
    assert notification_rate_key("sms", "2026030609") == "stonks:trading:notification_rate:sms:2026030609"
    assert decide(C.SMS, 10, 10).allowed and not decide(C.SMS, 11, 10).allowed
    assert decide(C.EMAIL, 21, 20).reason == "email rate limit of 20 per hour reached"


async def test_counters_live_in_redis_and_expire(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    for _ in range(3):
        await limiter.acquire(C.SMS, 10, START)
    key = notification_rate_key("sms", hour_bucket(START))
    assert int(await redis_client.get(key)) == 3
    assert 3600 < await redis_client.ttl(key) <= 7200


async def test_two_processes_share_one_cap(redis_client: aioredis.Redis, redis_url: str) -> None:
    other = aioredis.from_url(redis_url)
    try:
        a, b = RateLimiter(redis_client), RateLimiter(other)
        decisions = [await (a if i % 2 else b).acquire(C.SMS, 10, START) for i in range(15)]
    finally:
        await other.aclose()
    assert sum(d.allowed for d in decisions) == 10


async def test_without_redis_the_cap_still_holds_in_process() -> None:
    unreachable = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    try:
        limiter = RateLimiter(unreachable, timeout_seconds=0.5)
        decisions = [await limiter.acquire(C.EMAIL, 20, START) for _ in range(25)]
        next_hour = await limiter.acquire(C.EMAIL, 20, START + timedelta(hours=1))
    finally:
        await unreachable.aclose()
    assert sum(d.allowed for d in decisions) == 20 and next_hour.allowed
