"""The autonomous loop (seed tasks 13.1 and 25): the imperative shell around the decision core.

Each `tick` reads the state from PostgreSQL, runs the core's rules, and writes what they
decided: broker reports are applied, breakers resolved and checked, stops protected,
recommendations decided (woken by PostgreSQL NOTIFY, with the poll as safety net), order jobs
delivered from the outbox, and the session's close and the week's rebalance done once each.
Each step is guarded: a fault (a server restarting, a bad message) is logged, recorded in
`engine_faults`, and the loop goes on; the next tick retries from the database's state.

One engine per account: a PostgreSQL advisory lock, held for the engine's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import asyncpg
import redis.asyncio as aioredis
import structlog

from services.shared.heartbeat import Heartbeat
from services.shared.order_signing import OrderSigner
from services.shared.redis_keys import (
    QUEUE_BROKER_FILLS,
    QUEUE_BROKER_ORDERS,
    TRADING_DEDUPE_TTL_SECONDS,
    dedupe_key,
)
from services.shared.reliable_queue import ReliableQueue
from services.shared.schemas import RecommendationAction, TradingMode
from services.trading.core import trading_window, tranche_check
from services.trading.core.clock import Clock
from services.trading.core.correlation import CorrelationMatrix
from services.trading.core.decision import (
    DecisionContext,
    DecisionOutcome,
    MarketFacts,
    decide,
    failed_decision,
    takes_micro_path,
    unrecordable_decision,
)
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import PortfolioState, Recommendation
from services.trading.core.tranche_check import Cut, Refusal
from services.trading.live import outbox, telemetry
from services.trading.live.account_duties import AccountDuties
from services.trading.live.engine_store import EngineStore, Held
from services.trading.live.session_close import refresh_correlations
from services.trading.live.wake_listener import WakeListener
from services.trading.market.market_view_store import MarketViewStore
from services.trading.notifications.events import NotificationEvent

log = structlog.get_logger(__name__)
ENGINE_LOCK_KEY = 0x7374_6F6E_6B65  # "stonke": one engine per account database
NOTIFY_CHANNEL = "stonks_recommendations"
RECOMMENDATION_PAGE = 200


class Notifier(Protocol):
    """What the engine needs of the notification service (notifications/service.py)."""

    def notify(self, event: NotificationEvent) -> object:
        """Queue a notification; must never block or raise into the loop."""


class LogNotifier:
    """Without a notification service, events still reach the log."""

    def notify(self, event: NotificationEvent) -> None:
        log.info(
            "notification", event_type=event.event_type.value, **{k: str(v) for k, v in event.data.items()}
        )


@dataclass
class TickReport:
    at: datetime
    decisions: int = 0
    acted: int = 0
    orders_sent: int = 0
    reports_applied: int = 0
    exits: int = 0
    faults: list[str] = field(default_factory=list)


class TradingEngine:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        clock: Clock,
        *,
        order_signer: OrderSigner,
        mode: TradingMode = TradingMode.PAPER,
        notifier: Notifier | None = None,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.clock = clock
        self.order_signer = order_signer  # the broker fills only jobs signed with this key
        self.mode = mode
        self.notifier = notifier or LogNotifier()
        self.store = EngineStore(pool)
        self.market = MarketViewStore(pool)
        self.orders = ReliableQueue(redis, QUEUE_BROKER_ORDERS)
        self.fills = ReliableQueue(redis, QUEUE_BROKER_FILLS)
        self.instance_id = uuid.uuid4().hex
        self.settings = EngineSettings()
        self.correlations = CorrelationMatrix.empty()
        self.last_decision_at: datetime | None = None
        self.started = False
        self._lock_connection: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._reports_arrived = asyncio.Event()  # set by the report watcher, cleared once applied
        self._reports_applied = asyncio.Event()
        self.wake_up: WakeListener | None = None  # while `run` runs: the LISTEN wake-up
        self.heartbeat = Heartbeat()  # each pass of `run`, for /ready
        self.duties = AccountDuties(self)

    # -- life cycle ---------------------------------------------------------------------

    async def start(self, *, lock_timeout: float | None = None) -> None:
        """Take the account's engine lock (waiting, and saying so, while another engine holds
        it), then rebuild everything from PostgreSQL."""
        await self._take_lock(lock_timeout)
        now = self.clock.now()
        await self.store.engine_state(now)
        self.settings = await self.store.load_settings()
        await self._guarded("fills", self.fills.recover())
        try:
            self.correlations = await refresh_correlations(
                self.pool, now.astimezone(trading_window.NEW_YORK).date(), now
            )
        except Exception as exc:  # noqa: BLE001 - an empty matrix (all 0.0) is a safe start
            log.warning("correlations unavailable at start; treating pairs as unknown", error=str(exc))
        self.started = True
        log.info(
            "engine started",
            mode=self.mode.value,
            risk_tier=self.settings.risk_tier.value,
            enabled=self.settings.enabled,
            paused=self.settings.paused,
        )

    async def _take_lock(self, timeout: float | None) -> None:
        # The lock lives as long as this connection: it is held out of the pool until stop,
        # and counts as ours (holds_lock) only once the lock is granted.
        connection = await self.pool.acquire()
        try:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", ENGINE_LOCK_KEY):
                log.warning("another engine holds this account's lock; waiting for it to stop")
                await asyncio.wait_for(
                    connection.fetchval("SELECT pg_advisory_lock($1)", ENGINE_LOCK_KEY), timeout
                )
        except BaseException:
            # Given up waiting: the connection must not go back to the pool with a lock
            # request that the server might still grant.
            await self._give_back(connection, unlock=False)
            raise
        self._lock_connection = connection

    async def stop(self) -> None:
        """Graceful stop (seed task 13.1): later tranches are cancelled (no engine will
        re-check them when due); other undelivered jobs stay in the outbox and half-applied
        reports in the processing list, for the next start. Then the lock is released."""
        self.started = False
        holding = self.holds_lock
        if holding:  # only the lock holder owns the outbox; a waiting engine must not touch it
            await self._guarded(
                "stop",
                outbox.cancel_later_tranches(
                    self.pool, "the engine stopped before the tranche was due", self.clock.now()
                ),
            )
        connection, self._lock_connection = self._lock_connection, None
        if connection is not None:
            await self._give_back(connection, unlock=holding)
        log.info("engine stopped")

    async def _give_back(self, connection: asyncpg.Connection, *, unlock: bool) -> None:
        """Return the lock's connection to the pool: unlocked, or else terminated (then the
        lock ends with it), so the pool never lends out a connection holding the lock."""
        with contextlib.suppress(asyncpg.InterfaceError):  # the pool took a broken one back already
            if not (unlock and await _unlocked(connection)):
                connection.terminate()
            await self.pool.release(connection)

    async def run(self, stop: asyncio.Event) -> None:
        """The live loop: a full tick every polling interval (the safety net), and in between
        the decision step alone as soon as a recommendation is inserted (NOTIFY). When the
        LISTEN connection listens again after dying, a full tick runs at once: what was
        inserted meanwhile notified no one, and a PostgreSQL restart took the lock as well."""
        self.wake_up = WakeListener(self.pool, NOTIFY_CHANNEL, self._wake)
        await self.wake_up.start()
        watcher = asyncio.create_task(self._watch_reports(stop))
        loop = asyncio.get_running_loop()
        next_full_tick = loop.time()
        try:
            while not stop.is_set():
                self.heartbeat.beat()
                # Cleared before the step: a NOTIFY arriving during it wakes the next one.
                self._wake.clear()
                if self.wake_up.missed_notifications() or loop.time() >= next_full_tick:
                    self.wake_up.check()
                    await self.tick()
                    next_full_tick = loop.time() + self.settings.polling_interval.total_seconds()
                else:
                    await self.decide_pending()
                waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(
                    waits, timeout=max(next_full_tick - loop.time(), 0), return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in waits:
                    waiter.cancel()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self.heartbeat.stopped()
            await self.wake_up.close()

    async def decide_pending(self) -> TickReport:
        """The fast path between full ticks: apply the broker reports that arrived, then
        decide the recommendations waiting and send them."""
        now = self.clock.now()
        report = TickReport(now)
        if not self.holds_lock:  # checked without I/O here; the full tick pings and re-takes it
            return report
        timer = telemetry.tick_started(self.settings.polling_interval.total_seconds())
        loaded = await self._guarded("settings", self.store.load_settings(), report)
        if loaded is not None:
            self.settings = loaded
        if self._reports_arrived.is_set():
            await self._apply_reports(now, report)
        if trading_window.is_within_trading_window(now):
            await self._guarded("recommendations", self._decide_recommendations(now, report), report)
            report.orders_sent = await self._guarded("outbox", self._deliver(now), report, default=0)
        return telemetry.record_tick(report, timer)

    async def _watch_reports(self, stop: asyncio.Event) -> None:
        """Wake the loop the moment a broker report arrives, so a fill is in the books (its
        stop placed, its lots recorded) within milliseconds rather than at the next full
        tick. The loop stays the queue's only consumer: this task only watches."""
        while not stop.is_set():
            try:
                if not await self.fills.wait_for_message(timeout_seconds=1.0):
                    continue
            except Exception as exc:  # noqa: BLE001 - Redis down: the full tick still applies reports
                log.warning("cannot watch for broker reports; the full tick applies them", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            self._reports_applied.clear()
            self._reports_arrived.set()
            self._wake.set()
            # A report that fails leaves the queue for the processing list, so this wait ends
            # at once unless the pass broke off (then the next full tick retries it).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._reports_applied.wait(), self.settings.polling_interval.total_seconds()
                )

    # -- one tick -----------------------------------------------------------------------

    @property
    def holds_lock(self) -> bool:
        try:
            return self._lock_connection is not None and not self._lock_connection.is_closed()
        except asyncpg.InterfaceError:  # the pool took the broken connection back
            return False

    async def _keep_lock(self) -> None:
        """The lock dies with its connection (PostgreSQL restarted, connection dropped):
        take it again on a new one, or stop acting if another engine took it meanwhile."""
        if self.holds_lock:
            try:  # a connection killed while idle looks open until it is used
                await self._lock_connection.fetchval("SELECT 1")
                return
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                log.warning("the connection holding the account lock died")
        dead, self._lock_connection = self._lock_connection, None
        if dead is not None:  # handed back so the pool can replace it, not leaked
            await self._give_back(dead, unlock=False)
        connection = await self.pool.acquire()
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", ENGINE_LOCK_KEY):
            await self.pool.release(connection)
            raise RuntimeError("lost the account lock to another engine; this engine stops acting")
        self._lock_connection = connection
        log.warning("account lock re-acquired on a new connection")

    async def tick(self) -> TickReport:
        now = self.clock.now()
        report = TickReport(now)
        timer = telemetry.tick_started(self.settings.polling_interval.total_seconds())
        if await self._guarded("lock", self._keep_lock(), report, default=False) is False:
            return telemetry.record_tick(report, timer)
        loaded = await self._guarded("settings", self.store.load_settings(), report)
        if loaded is not None:
            self.settings = loaded
        await self._guarded("breakers", self.duties.resolve_breakers(now), report)
        await self._apply_reports(now, report)
        if trading_window.is_market_open(now):
            await self._guarded("session", self.duties.open_session(now), report)
            await self._guarded("protection", self.duties.protect(now, report), report)
        if trading_window.is_within_trading_window(now):
            await self._guarded("recommendations", self._decide_recommendations(now, report), report)
            await self._guarded("rebalance", self.duties.weekly_rebalance(now, report), report)
        sent = await self._guarded("outbox", self._deliver(now), report)
        report.orders_sent = sent or 0
        await self._guarded("session_close", self.duties.close_session_if_due(now), report)
        await self._guarded("reports", self.duties.send_reports(now), report)
        return telemetry.record_tick(report, timer)

    async def _apply_reports(self, now: datetime, report: TickReport) -> None:
        self._reports_arrived.clear()
        await self._guarded("fills", self.duties.apply_reports(now, report), report)
        self._reports_applied.set()

    async def _guarded(
        self, component: str, work: Awaitable[Any], report: TickReport | None = None, default: Any = None
    ) -> Any:
        try:
            return await work
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
            message = f"{type(exc).__name__}: {exc}"
            log.error("engine step failed; will retry next tick", component=component, error=message)
            if report is not None:
                report.faults.append(f"{component}: {message}")
            with contextlib.suppress(Exception):  # PostgreSQL itself may be what failed
                await self.store.record_fault(component, message)
            return default

    # -- steps --------------------------------------------------------------------------

    async def _decide_recommendations(self, now: datetime, report: TickReport) -> None:
        while True:  # in pages, until none is left: a burst must not wait for the next poll
            # From the engine's epoch (read in the same query): older rows are history.
            page = await self.store.undecided_recommendations(None, now, limit=RECOMMENDATION_PAGE)
            decided_before = report.decisions
            for rec in page:
                outcome = await self.decide_one(rec, now)
                if outcome is not None:
                    report.decisions += 1
                    report.acted += outcome.acted
            if len(page) < RECOMMENDATION_PAGE or report.decisions == decided_before:
                return

    async def decide_one(self, rec: Recommendation, now: datetime) -> DecisionOutcome | None:
        """Decide one recommendation once: a Redis mark first (fast, and it stops two racing
        paths of this process), the database's unique index last (authoritative)."""
        if not await self._mark(rec.id):
            return None
        try:
            return await self._decide_marked(rec, now)
        except BaseException:
            await self._unmark(rec.id)  # not decided after all: a later tick must try again
            raise

    async def _decide_marked(self, rec: Recommendation, now: datetime) -> DecisionOutcome | None:
        held = await self.store.held()
        quotes = await self.market.prices.quotes([*held.priced_tickers, rec.ticker], now)
        # A sell is sized from shares actually held; a buy sees unfilled buys as spent cash.
        selling = str(rec.action) == RecommendationAction.SELL.value
        # Independent reads, each on its own pooled connection: their round trips overlap
        # (decision latency, issue 5).
        portfolio = held.portfolio(held.positions(quotes), quotes, pending_buys=not selling)
        reads = [self.store.breaker_state(), self.market.view(rec.ticker, now, quote=quotes.get(rec.ticker))]
        if takes_micro_path(rec, self.settings):  # only a micro-trade counts today's micro entries
            reads.append(self.store.micro_entries_since(trading_window.new_york_day_start(now)))
        breakers, market, *micro = await asyncio.gather(*reads)
        context = DecisionContext(
            portfolio, breakers, self.settings, self.correlations, micro[0] if micro else 0
        )
        try:
            outcome = decide(rec, market, context, now=now, decision_id=uuid.uuid4())
        except Exception as exc:
            log.exception(
                "decision core failed on a recommendation; recorded as a skip", recommendation_id=rec.id
            )
            outcome = failed_decision(
                rec, market, context, now=now, decision_id=uuid.uuid4(), error=f"{type(exc).__name__}: {exc}"
            )
        outcome = await self._record(
            rec,
            outcome,
            lambda error: unrecordable_decision(
                rec, market, context, now=now, decision_id=uuid.uuid4(), error=error
            ),
        )
        if outcome is None:
            return None
        self.last_decision_at = now
        log.info(
            "decided",
            recommendation_id=rec.id,
            ticker=outcome.decision.ticker,  # as stored: bounded
            decision=outcome.decision.decision.value,
            shares=str(outcome.decision.computed_share_quantity),
            reason=outcome.decision.skip_reason,
        )
        return outcome

    async def _record(
        self, rec: Recommendation, outcome: DecisionOutcome, skip_for: Callable[[str], DecisionOutcome]
    ) -> DecisionOutcome | None:
        """Write the decision; None when the recommendation is decided already, or parked.

        A decision PostgreSQL or the order job refuses for its own data would be refused again
        on every tick, holding back every recommendation behind it (issue 12): it is written
        instead as a skip saying why (`skip_for(error)`), and if even that is refused, the
        recommendation is parked with a fault and not taken again."""
        try:
            if await self._write(outcome, rec.confidence):
                return outcome
            log.info("recommendation already decided", recommendation_id=rec.id)
            return None
        except outbox.DecisionRefused as refused:
            log.error(
                "decision refused by the database; recording a skip instead",
                recommendation_id=rec.id,
                error=str(refused),
            )
            outcome = skip_for(str(refused))
        try:
            return outcome if await self._write(outcome, rec.confidence) else None
        except outbox.DecisionRefused as refused:
            log.error(
                "even a skip was refused; recommendation parked", recommendation_id=rec.id, error=str(refused)
            )
            await self.store.park_recommendation(
                rec.id, f"recommendation {rec.id} parked, its decision refused: {refused}"
            )
            return None

    async def _write(self, outcome: DecisionOutcome, confidence: Any) -> bool:
        async with self.pool.acquire() as connection:
            return await outbox.record_decision(connection, outcome, self.mode, confidence)

    async def _unmark(self, recommendation_id: int) -> None:
        with contextlib.suppress(Exception):  # an expired or lost mark is harmless: the database decides
            await self.redis.delete(dedupe_key(recommendation_id))

    async def _mark(self, recommendation_id: int) -> bool:
        """False only when this very process already marked it (a racing duplicate)."""
        key = dedupe_key(recommendation_id)
        try:
            if await self.redis.set(key, self.instance_id, nx=True, ex=TRADING_DEDUPE_TTL_SECONDS):
                return True
            holder = await self.redis.get(key)
        except Exception as exc:  # noqa: BLE001 - Redis down: the database constraint still holds
            log.warning("dedupe mark unavailable; the database decides", error=str(exc))
            return True
        holder = holder.decode() if isinstance(holder, bytes) else holder
        if holder == self.instance_id:
            return False
        log.warning(
            "recommendation marked by an earlier run that did not finish; deciding it now",
            recommendation_id=recommendation_id,
        )
        return True

    async def _deliver(self, now: datetime) -> int:
        settings = self.settings
        breakers = await self.store.breaker_state()
        tranches = _TrancheFacts(self, now)

        async def may_send(row) -> Refusal | Cut | None:
            if row["side"] == "sell":  # exits reduce risk: sent whenever the market is open
                return None if trading_window.is_market_open(now) else tranche_check.WAIT
            session = row["decided_at"].astimezone(trading_window.NEW_YORK).date()
            if row["tranche_index"] <= 1:  # a first order goes out as decided, or not at all
                return tranche_check.send_refusal(row["ticker"], session, settings, breakers, now)
            portfolio, market = await tranches.facts(row)
            return tranche_check.check_tranche(
                _due_tranche(row, session), portfolio, breakers, settings, market, self.correlations, now
            )

        return await outbox.deliver_due(self.pool, self.orders, self.order_signer, now, may_send)


class _TrancheFacts:
    """What re-checking a later tranche reads, for one delivery pass: the account's snapshot
    (read once, and only if a later tranche is due) and the ticker's quote and market view."""

    def __init__(self, engine: TradingEngine, now: datetime) -> None:
        self.engine, self.now = engine, now
        self._held: Held | None = None

    async def facts(self, row) -> tuple[PortfolioState, MarketFacts]:
        engine, ticker = self.engine, row["ticker"]
        if self._held is None:
            self._held = await engine.store.held()
        # The book as a new decision would see it, less this entry's own unsent tranches:
        # the tranche is added by the check itself, and the later ones are not bought yet.
        held = self._held.without_unsent(row["trading_decision_id"])
        quotes = await engine.market.prices.quotes([*held.priced_tickers, ticker], self.now)
        market = await engine.market.view(ticker, self.now, quote=quotes.get(ticker))
        return held.portfolio(held.positions(quotes), quotes), market


def _due_tranche(row, session: date) -> tranche_check.DueTranche:
    plan = row["stop_plan"] or {}
    return tranche_check.DueTranche(
        row["ticker"],
        row["quantity"],
        row["tranche_index"],
        row["tranche_count"],
        session,
        Decimal(plan.get("atr", "0")) * Decimal(plan.get("atr_multiplier", "0")),
        Decimal(plan.get("confidence", "0")),
    )


async def _unlocked(connection: asyncpg.Connection) -> bool:
    try:
        await connection.execute("SELECT pg_advisory_unlock($1)", ENGINE_LOCK_KEY)
        return True
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        log.warning("could not release the account lock cleanly; it ends with its connection", error=str(exc))
        return False
