"""NotificationService: alerts that never block trading (seed tasks 16.1 and 25.5, issue 7).

The engine calls `notify(event)` (plain, synchronous, O(1)): the event is put on a bounded
queue per enabled channel and the call returns. One background task per channel renders,
rate-limits, sends with a time limit and retries with backoff, recording every attempt; a
slow or dead channel therefore delays only its own queue, never the engine nor the other
channels. A full queue records the event as failed ("notification queue full") instead of
waiting. Nothing a channel, Redis or PostgreSQL does can end a worker.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import structlog

from services.shared.schemas import DeliveryStatus, NotificationChannel, NotificationEventType
from services.trading.core.clock import Clock
from services.trading.notifications.channel import Channel, UnconfiguredChannel
from services.trading.notifications.delivery import AttemptOutcome, DeliveryPolicy, attempt, backoff_delay
from services.trading.notifications.events import NotificationEvent
from services.trading.notifications.formatting import Message, fit_sms, render
from services.trading.notifications.notification_store import (
    AttemptRecord,
    NotificationRecord,
    NotificationStore,
)
from services.trading.notifications.rate_limit import RateLimiter
from services.trading.notifications.redaction import redact
from services.trading.notifications.routing import Route, route
from services.trading.notifications.schedule import ScheduledReport, daily_summary_due, weekly_digest_due
from services.trading.notifications.settings import NotificationSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")
ChannelFactory = Callable[[NotificationSettings], Mapping[NotificationChannel, Channel]]
QUEUE_FULL = "notification queue full"
STOPPED = "notification service stopped before delivery"
# Drops waiting to be recorded; beyond this the oldest are only counted and logged.
MAX_PENDING_DROPS = 1000
_SCHEDULES = (
    (NotificationEventType.DAILY_SUMMARY, daily_summary_due),
    (NotificationEventType.WEEKLY_DIGEST, weekly_digest_due),
)


class NotificationService:
    def __init__(
        self,
        *,
        settings: NotificationSettings,
        channel_factory: ChannelFactory,
        store: NotificationStore,
        rate_limiter: RateLimiter,
        clock: Clock,
        policy: DeliveryPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._factory = channel_factory
        self._store = store
        self._limiter = rate_limiter
        self._clock = clock
        self._policy = policy or DeliveryPolicy()
        self._sleep = sleep
        self._queues = {
            c: asyncio.Queue[NotificationEvent](self._policy.queue_size) for c in NotificationChannel
        }
        self._drops: deque[tuple[NotificationChannel, NotificationEvent, str, datetime]] = deque()
        self._drops_waiting = asyncio.Event()
        self._lost_drops = 0
        self._recording_drop = False
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._stopped = False
        self._last_period: dict[NotificationEventType, str | None] = {}
        self.update_settings(settings)

    # -- the engine's side ----------------------------------------------------------------

    @property
    def settings(self) -> NotificationSettings:
        return self._settings

    def update_settings(self, settings: NotificationSettings) -> None:
        """Replace the settings whole (after a PUT of the notification config)."""
        try:
            channels = dict(self._factory(settings))
        except Exception as exc:  # noqa: BLE001 - a bad adapter setting must not cost the other channels
            reason = redact(f"channel setup failed: {type(exc).__name__}: {exc}")
            log.error("notification_channel_setup_failed", error=reason)
            channels = {c: UnconfiguredChannel(c, reason) for c in settings.enabled_channels()}
        self._settings, self._channels = settings, channels

    def notify(self, event: NotificationEvent) -> Route:
        """Queue `event` on every channel it goes to and return at once; never blocks, never
        raises for a delivery problem. Safe to call from another thread too."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._enqueue, event)
            return route(event, self._settings)
        return self._enqueue(event)

    async def send_alert(self, event: NotificationEvent) -> Route:
        """`notify` for async callers: returns once queued, not once delivered."""
        return self.notify(event)

    async def reports_due(self) -> tuple[ScheduledReport, ...]:
        """Daily summary and weekly digest due now and not yet sent (switched-off types never are)."""
        now, settings, due = self._clock.now(), self._settings, []
        for kind, is_due in _SCHEDULES:
            if kind not in settings.notification_event_types:
                continue
            if kind not in self._last_period:
                self._last_period[kind] = await self._safely(
                    self._store.last_report_period(kind), "load_report"
                )
            report = is_due(now, settings, self._last_period[kind])
            if report is not None:
                due.append(report)
        return tuple(due)

    async def send_daily_summary(self, report: ScheduledReport, event: NotificationEvent) -> bool:
        """Send the summary of `report`'s session once, whoever else tries; False if already sent."""
        return await self._send_report(NotificationEventType.DAILY_SUMMARY, report, event)

    async def send_weekly_digest(self, report: ScheduledReport, event: NotificationEvent) -> bool:
        """Send the digest of `report`'s week once, whoever else tries; False if already sent."""
        return await self._send_report(NotificationEventType.WEEKLY_DIGEST, report, event)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the workers; events notified before this wait in their queues."""
        if self._tasks:
            return
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._stopped = False
        self._tasks = [asyncio.create_task(self._work(c), name=f"notify-{c}") for c in NotificationChannel]
        self._tasks.append(asyncio.create_task(self._record_drops(), name="notify-drops"))

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is delivered or given up; False if `timeout` came first."""

        async def idle() -> None:
            await asyncio.gather(*(q.join() for q in self._queues.values()))
            while self._drops or self._recording_drop:  # noqa: ASYNC110 - counters, set from many places
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(idle(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self, deadline: float = 10.0) -> None:
        """Let queued events go out for up to `deadline` seconds, then stop; what is left is
        recorded as failed, so the log shows every alert that never reached the owner."""
        if not self._tasks:
            return
        await self.drain(deadline)
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        now = self._clock.now()
        for channel, queue in self._queues.items():
            while not queue.empty():
                self._drops.append((channel, queue.get_nowait(), STOPPED, now))
                queue.task_done()
        while self._drops:
            await self._record_drop(*self._drops.popleft())

    # -- inside -----------------------------------------------------------------------------

    def _enqueue(self, event: NotificationEvent) -> Route:
        decision = route(event, self._settings)
        queued = []
        for channel in decision.channels:
            try:
                if self._stopped:
                    raise asyncio.QueueFull
                self._queues[channel].put_nowait(event)
                queued.append(channel)
            except asyncio.QueueFull:
                self._drop(channel, event, STOPPED if self._stopped else QUEUE_FULL)
        if not decision.channels:
            log.debug("notification_not_sent", event_type=str(event.event_type), reason=decision.reason)
        return Route(tuple(queued), decision.reason)

    def _drop(self, channel: NotificationChannel, event: NotificationEvent, reason: str) -> None:
        log.warning(
            "notification_dropped", channel=str(channel), event_type=str(event.event_type), reason=reason
        )
        if self._stopped:  # nobody is left to record it: the warning above is the record
            return
        if len(self._drops) >= MAX_PENDING_DROPS:
            self._drops.popleft()
            self._lost_drops += 1
            log.error("notification_drop_not_recorded", lost=self._lost_drops)
        self._drops.append((channel, event, reason, self._clock.now()))
        self._drops_waiting.set()

    async def _record_drops(self) -> None:
        while True:
            await self._drops_waiting.wait()
            self._drops_waiting.clear()
            while self._drops:
                self._recording_drop = True
                try:
                    await self._record_drop(*self._drops.popleft())
                finally:
                    self._recording_drop = False

    async def _record_drop(
        self, channel: NotificationChannel, event: NotificationEvent, reason: str, at: datetime
    ) -> None:
        message = self._render(event)
        record = NotificationRecord(
            channel,
            event.event_type,
            message.text_for(channel),
            DeliveryStatus.FAILED,
            at,
            error_message=reason,
        )
        await self._safely(self._store.insert(record), "record_drop")

    async def _work(self, channel: NotificationChannel) -> None:
        queue = self._queues[channel]
        while True:
            event = await queue.get()
            try:
                await self._deliver(channel, event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug here must cost one alert, not the channel
                log.error("notification_worker_error", channel=str(channel), error=redact(repr(exc)))
            finally:
                queue.task_done()

    async def _deliver(self, name: NotificationChannel, event: NotificationEvent) -> None:
        settings, message = self._settings, self._render(event)
        text = message.text_for(name)
        channel = self._channels.get(name) or UnconfiguredChannel(
            name, f"{name} was switched off before delivery"
        )
        # A channel without its settings fails at once; it must not use up the hour's quota.
        if not isinstance(channel, UnconfiguredChannel):
            limit = await self._limiter.acquire(name, settings.rate_limit(name), self._clock.now())
            if not limit.allowed:
                log.info("notification_rate_limited", channel=str(name), event_type=str(event.event_type))
                record = NotificationRecord(
                    name,
                    event.event_type,
                    text,
                    DeliveryStatus.RATE_LIMITED,
                    self._clock.now(),
                    error_message=limit.reason,
                )
                await self._safely(self._store.insert(record), "record_rate_limited")
                return
        pending = NotificationRecord(name, event.event_type, text, DeliveryStatus.PENDING, self._clock.now())
        row = await self._safely(self._store.insert(pending), "record_pending")
        await self._attempts(channel, message, row)

    async def _attempts(self, channel: Channel, message: Message, row: int | None) -> None:
        """Up to 1 + retries tries with backoff; each outcome goes to the log as it happens."""
        for number in range(1, self._policy.max_attempts + 1):
            started = self._clock.now()
            try:
                if number > 1:
                    await self._sleep(backoff_delay(self._policy, number - 1))
                outcome = await attempt(channel, message, self._policy.attempt_timeout_seconds)
            except asyncio.CancelledError:
                # Stopped mid-delivery: close the row as failed rather than leave it pending.
                await self._record_attempt(
                    row, number, AttemptOutcome(False, STOPPED), started, DeliveryStatus.FAILED
                )
                raise
            last = outcome.delivered or outcome.permanent or number == self._policy.max_attempts
            status = (DeliveryStatus.DELIVERED if outcome.delivered
                      else DeliveryStatus.FAILED if last else DeliveryStatus.PENDING)  # fmt: skip
            log.info(
                "notification_attempt",
                channel=str(channel.name),
                event_type=str(message.event_type),
                attempt=number,
                status=str(status),
                error=outcome.error,
            )
            await self._record_attempt(row, number, outcome, started, status)
            if last:
                return

    async def _record_attempt(
        self, row: int | None, number: int, outcome: AttemptOutcome, started: datetime, status: DeliveryStatus
    ) -> None:
        if row is None:  # the pending row could not be written; the log line above stands
            return
        record = AttemptRecord(row, number, outcome.delivered, outcome.error, started, self._clock.now())
        await self._safely(self._store.record_attempt(record, status), "record_attempt")

    def _render(self, event: NotificationEvent) -> Message:
        try:
            return render(event)
        except Exception as exc:  # noqa: BLE001 - formatters are tolerant; this is the net under the net
            log.error("notification_render_failed", event_type=str(event.event_type), error=repr(exc))
            line = f"STONKS {event.event_type} at {event.occurred_at.isoformat()}"
            return Message(
                event.event_type,
                event.occurred_at,
                fit_sms(line),
                f"[stonks] {event.event_type}",
                line + "\n",
                {},
            )

    async def _send_report(
        self, kind: NotificationEventType, report: ScheduledReport, event: NotificationEvent
    ) -> bool:
        if report.kind is not kind or event.event_type is not kind:
            raise ValueError(f"expected a {kind} report and event, got {report.kind} and {event.event_type}")
        claimed = await self._safely(
            self._store.claim_report(kind, report.period, self._clock.now()), "claim"
        )
        # With the database unreachable the claim is unknown: sending risks a duplicate
        # summary, not sending risks none at all; the owner would rather have two.
        self._last_period[kind] = report.period
        if claimed is False:
            return False
        self.notify(event)
        return True

    async def _safely(self, operation: Awaitable[T], what: str) -> T | None:
        """Run a store call with a time limit; a failure is logged and read as None."""
        try:
            return await asyncio.wait_for(operation, self._policy.store_timeout_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a log write must never stop a delivery
            log.error("notification_store_failed", operation=what, error=redact(repr(exc)))
            return None
