"""The service never blocks nor crashes the trading loop: retries, timeouts, full queues,
dead stores, and a record of every attempt (seed task 16.1, issue 7).

Pace is measured in iterations of a stand-in trading loop, never in wall-clock seconds.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.shared.schemas import NotificationChannel as C
from services.shared.schemas import NotificationEventType
from services.trading.core.clock import SimulatedClock
from services.trading.notifications import events
from services.trading.notifications.channel import ChannelError
from services.trading.notifications.delivery import DeliveryPolicy, backoff_delay
from services.trading.notifications.notification_store import PostgresNotificationStore
from services.trading.notifications.settings import NotificationSettings

from .conftest import FAST, RecordingChannel, ScriptedChannel, breaker_event, make_service

pytestmark = pytest.mark.integration


async def rows(pool: asyncpg.Pool, channel: C | None = None) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM notifications WHERE $1::text IS NULL OR channel = $1 ORDER BY id",
        channel and str(channel),
    )


async def attempts(pool: asyncpg.Pool, notification_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM notification_attempts WHERE notification_id = $1 ORDER BY attempt", notification_id
    )


class TradingLoop:
    """A stand-in for the engine loop: counts its iterations, yields to the event loop each time."""

    def __init__(self) -> None:
        self.iterations = 0
        self.done = asyncio.Event()

    async def run(self, on_iteration=None) -> None:
        while not self.done.is_set():
            self.iterations += 1
            if on_iteration:
                on_iteration(self.iterations)
            await asyncio.sleep(0)


async def test_failing_channels_are_retried_then_failed_while_the_loop_keeps_iterating(
    pool, redis_client, clock
) -> None:
    loop = TradingLoop()
    seen_sms, seen_email = [], []

    async def hang_forever() -> None:
        await asyncio.Event().wait()

    def hang(_: int):
        seen_sms.append(loop.iterations)
        return hang_forever()

    def fail(_: int):
        seen_email.append(loop.iterations)
        raise ChannelError("554 relay down")

    sms, email = ScriptedChannel(C.SMS, hang), ScriptedChannel(C.EMAIL, fail)
    policy = DeliveryPolicy(backoff_base_seconds=0.005, attempt_timeout_seconds=0.02)
    service = make_service(pool, redis_client, clock, {C.SMS: sms, C.EMAIL: email}, policy=policy)
    await service.start()
    queued = []
    runner = asyncio.create_task(
        loop.run(lambda i: queued.append(service.notify(breaker_event())) if i == 1 else None)
    )
    assert await service.drain(timeout=10)
    iterations_at_end = loop.iterations
    loop.done.set()
    await runner
    await service.stop()

    assert queued[0].channels == (C.SMS, C.EMAIL)  # notify returned a result within the first iteration
    assert sms.calls == email.calls == 4  # first try + 3 retries
    # The loop moved on between every attempt of both channels: delivery never held it.
    assert seen_sms == sorted(set(seen_sms)) and seen_email == sorted(set(seen_email))
    assert seen_sms[0] >= 1 and iterations_at_end > seen_sms[-1] and iterations_at_end > seen_email[-1]
    for channel, error in ((C.SMS, "no answer within 0.02 s"), (C.EMAIL, "554 relay down")):
        (row,) = await rows(pool, channel)
        assert (row["delivery_status"], row["retry_count"], row["error_message"]) == ("failed", 3, error)
        assert row["delivered_at"] is None
        tries = await attempts(pool, row["id"])
        assert [(t["attempt"], t["outcome"], t["error_message"]) for t in tries] == [
            (n, "failed", error) for n in (1, 2, 3, 4)
        ]


async def test_a_retry_that_succeeds_is_delivered_with_every_attempt_on_record(
    pool, redis_client, clock
) -> None:
    def flaky(call: int) -> None:
        if call < 3:
            raise ConnectionResetError("connection reset by peer")

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    channel = ScriptedChannel(C.EMAIL, flaky)
    service = make_service(
        pool, redis_client, clock, {C.EMAIL: channel}, policy=DeliveryPolicy(backoff_base_seconds=1.0)
    )
    service._sleep = sleep  # the injected sleep: the schedule is checked, not waited for
    await service.start()
    service.notify(breaker_event())
    await service.drain(timeout=10)
    await service.stop()
    (row,) = await rows(pool)
    assert (row["delivery_status"], row["retry_count"]) == ("delivered", 2)
    assert row["delivered_at"] == clock.now()
    assert row["error_message"] == "ConnectionResetError: connection reset by peer"  # the last failure, kept
    assert [t["outcome"] for t in await attempts(pool, row["id"])] == ["failed", "failed", "delivered"]
    assert waits == [1.0, 2.0]  # exponential: base, 2 x base
    assert [backoff_delay(DeliveryPolicy(), n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


async def test_a_permanent_error_is_not_retried(pool, redis_client, clock) -> None:
    def refused(_: int) -> None:
        raise ChannelError("SMTP login refused (535)", permanent=True)

    channel = ScriptedChannel(C.EMAIL, refused)
    service = make_service(pool, redis_client, clock, {C.EMAIL: channel})
    await service.start()
    service.notify(breaker_event())
    await service.drain(timeout=10)
    await service.stop()
    (row,) = await rows(pool)
    assert (channel.calls, row["delivery_status"], row["retry_count"]) == (1, "failed", 0)


async def test_a_full_queue_records_the_event_as_failed_instead_of_waiting(pool, redis_client, clock) -> None:
    async def slow() -> None:
        await asyncio.Event().wait()

    channel = ScriptedChannel(C.SMS, lambda _: slow())
    policy = DeliveryPolicy(queue_size=2, retries=0, attempt_timeout_seconds=0.02)
    service = make_service(pool, redis_client, clock, {C.SMS: channel}, policy=policy)
    await service.start()
    routes = [service.notify(breaker_event()) for _ in range(10)]  # no await: none of these can wait
    assert [len(r.channels) for r in routes] == [1, 1] + [0] * 8
    await service.drain(timeout=10)
    await service.stop()
    stored = await rows(pool)
    assert len(stored) == 10 and {r["delivery_status"] for r in stored} == {"failed"}
    assert sum(r["error_message"] == "notification queue full" for r in stored) == 8


async def test_a_hung_channel_does_not_delay_the_others(pool, redis_client, clock) -> None:
    release = asyncio.Event()
    sms = ScriptedChannel(C.SMS, lambda _: release.wait())
    email = RecordingChannel(C.EMAIL)
    service = make_service(
        pool,
        redis_client,
        clock,
        {C.SMS: sms, C.EMAIL: email},
        policy=DeliveryPolicy(attempt_timeout_seconds=30),
    )
    await service.start()
    service.notify(breaker_event())
    for _ in range(1000):  # bounded wait, counted in event-loop turns
        if email.received and sms.calls:
            break
        await asyncio.sleep(0.001)
    assert len(email.received) == 1 and sms.calls == 1  # email went out while SMS hangs
    await service.stop(deadline=0.05)
    by_channel = {r["channel"]: r for r in await rows(pool)}
    assert by_channel["email"]["delivery_status"] == "delivered"
    # Stopped mid-attempt: closed as failed, not left pending forever.
    assert by_channel["sms"]["delivery_status"] == "failed"
    assert by_channel["sms"]["error_message"] == "notification service stopped before delivery"


async def test_stop_records_what_was_still_queued(pool, redis_client, clock) -> None:
    channel = ScriptedChannel(C.SMS, lambda _: asyncio.Event().wait())
    service = make_service(
        pool, redis_client, clock, {C.SMS: channel}, policy=DeliveryPolicy(attempt_timeout_seconds=30)
    )
    for _ in range(3):
        service.notify(breaker_event())  # before start: waits in the queue
    await service.start()
    await service.stop(deadline=0.05)
    stored = await rows(pool)
    assert len(stored) == 3 and {r["delivery_status"] for r in stored} == {"failed"}
    assert service.notify(breaker_event()).channels == ()  # after stop: refused (and logged)


async def test_only_enabled_types_and_large_enough_trades_are_sent(pool, redis_client, clock) -> None:
    email = RecordingChannel(C.EMAIL)
    settings = NotificationSettings(
        email_enabled=True,
        email_recipients=("me@example.com",),
        large_trade_pnl_threshold=Decimal(100),
        notification_event_types=(NotificationEventType.LARGE_TRADE_PNL,),
    )
    service = make_service(pool, redis_client, clock, {C.EMAIL: email}, settings=settings)
    await service.start()

    def trade(pnl: str) -> events.NotificationEvent:
        return events.large_trade_pnl(
            clock.now(),
            ticker="MSFT",
            quantity=3,
            entry_price=Decimal(400),
            exit_price=Decimal(400) + Decimal(pnl) / 3,
            realized_pnl=Decimal(pnl),
        )

    assert "switched off" in service.notify(breaker_event()).reason
    assert "under the $100.00 threshold" in service.notify(trade("99.99")).reason
    assert service.notify(trade("-100")).channels == (C.EMAIL,)  # losses count too
    assert service.notify(trade("250")).channels == (C.EMAIL,)
    await service.drain(timeout=10)
    await service.stop()
    assert ["-$100.00" in m.subject or "+$250.00" in m.subject for m, _ in email.received] == [True, True]


async def test_an_enabled_channel_without_settings_records_why(pool, redis_client, clock) -> None:
    from services.trading.notifications.channel_config import ChannelConfig, build_channels
    from services.trading.notifications.rate_limit import RateLimiter
    from services.trading.notifications.service import NotificationService

    settings = NotificationSettings(webhook_enabled=True)
    service = NotificationService(
        settings=settings,
        channel_factory=lambda s: build_channels(ChannelConfig(), s, clock),
        store=PostgresNotificationStore(pool),
        rate_limiter=RateLimiter(redis_client),
        clock=clock,
        policy=FAST,
    )
    await service.start()
    service.notify(breaker_event())
    await service.drain(timeout=10)
    await service.stop()
    (row,) = await rows(pool)
    assert row["delivery_status"] == "failed" and "STONKS_WEBHOOK_URL" in row["error_message"]


async def test_a_dead_database_costs_the_record_not_the_alert(database_url, redis_client, clock) -> None:
    from services.shared.db import create_pool

    dead = await create_pool(database_url, max_size=1)
    await dead.close()  # every write now fails
    email = RecordingChannel(C.EMAIL)
    service = make_service(dead, redis_client, clock, {C.EMAIL: email})
    await service.start()
    service.notify(breaker_event())
    await service.drain(timeout=10)
    await service.stop()
    assert len(email.received) == 1


async def test_notify_from_another_thread_is_handed_to_the_event_loop(pool, redis_client, clock) -> None:
    email = RecordingChannel(C.EMAIL)
    service = make_service(pool, redis_client, clock, {C.EMAIL: email})
    await service.start()
    thread = threading.Thread(target=service.notify, args=(breaker_event(),))
    thread.start()
    await asyncio.to_thread(thread.join)
    await asyncio.sleep(0)  # the loop runs the handed-over enqueue
    await service.drain(timeout=10)
    await service.stop()
    assert len(email.received) == 1


async def test_scheduled_reports_are_sent_once_per_period_across_restarts(
    pool, redis_client: aioredis.Redis
) -> None:
    clock = SimulatedClock(datetime(2026, 3, 6, 22, 0, tzinfo=UTC))  # Friday 17:00 New York
    email = RecordingChannel(C.EMAIL)
    service = make_service(pool, redis_client, clock, {C.EMAIL: email})
    await service.start()
    due = {r.kind: r for r in await service.reports_due()}
    assert set(due) == {NotificationEventType.DAILY_SUMMARY, NotificationEventType.WEEKLY_DIGEST}
    daily = events.daily_summary(
        clock.now(),
        session=due["daily_summary"].last_day,
        total_value=Decimal(1000),
        day_pnl=Decimal(5),
        day_pnl_pct=Decimal("0.005"),
        realized_pnl=Decimal(0),
        trades_closed=0,
        wins=0,
        losses=0,
        open_positions=1,
        active_pool=Decimal(900),
        reserve=Decimal(100),
        risk_tier="moderate",
    )
    assert await service.send_daily_summary(due["daily_summary"], daily)
    assert not await service.send_daily_summary(due["daily_summary"], daily)
    assert [r.kind for r in await service.reports_due()] == [NotificationEventType.WEEKLY_DIGEST]
    await service.drain(timeout=10)
    await service.stop()

    restarted = make_service(pool, redis_client, clock, {C.EMAIL: email})
    assert [r.kind for r in await restarted.reports_due()] == [NotificationEventType.WEEKLY_DIGEST]
    assert not await restarted.send_daily_summary(due["daily_summary"], daily)
    assert len(email.received) == 1


async def test_a_channel_that_breaks_its_contract_is_recorded_not_fatal(pool, redis_client, clock) -> None:
    class NotAsync:
        name = C.WEBHOOK

        def send(self, message):  # forgot `async`: returns None, which cannot be awaited
            return None

    email = RecordingChannel(C.EMAIL)
    service = make_service(pool, redis_client, clock, {C.WEBHOOK: NotAsync(), C.EMAIL: email})
    await service.start()
    service.notify(breaker_event())
    service.notify(breaker_event())
    await service.drain(timeout=10)
    await service.stop()
    webhook_rows = await rows(pool, C.WEBHOOK)
    assert [r["delivery_status"] for r in webhook_rows] == ["failed", "failed"]
    assert webhook_rows[0]["error_message"].startswith("TypeError")
    assert len(email.received) == 2
