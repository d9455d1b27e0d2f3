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
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Awaitable, Protocol

import asyncpg
import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError

from services.shared.orders import FillReport
from services.shared.redis_keys import QUEUE_BROKER_FILLS, QUEUE_BROKER_ORDERS, TRADING_DEDUPE_TTL_SECONDS, dedupe_key
from services.shared.reliable_queue import ReliableQueue
from services.shared.schemas import NotificationEventType, OrderReason, TradingMode
from services.trading import circuit_breaker, outbox, owner_reports, rebalancer, telemetry, trading_window
from services.trading.circuit_breaker import CircuitBreakerEvent
from services.trading.clock import Clock
from services.trading.correlation import CorrelationMatrix
from services.trading.decision import DecisionContext, DecisionOutcome, decide, exit_decision, failed_decision
from services.trading.engine_settings import EngineSettings
from services.trading.fill_handler import FillEffects, apply_report
from services.trading.market_view_store import MarketViewStore
from services.trading.models import PortfolioState, Recommendation
from services.trading.notifications import events
from services.trading.notifications.events import NotificationEvent
from services.trading.protection import Exit, PositionMarket, protect
from services.trading.session_close import close_session, refresh_correlations
from services.trading.store import EngineStore

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
        log.info("notification", event_type=event.event_type.value, **{k: str(v) for k, v in event.data.items()})


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
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, clock: Clock, *,
                 mode: TradingMode = TradingMode.PAPER, notifier: Notifier | None = None) -> None:
        self.pool = pool
        self.redis = redis
        self.clock = clock
        self.mode = mode
        self.notifier = notifier or LogNotifier()
        self.store = EngineStore(pool)
        self.market = MarketViewStore(pool)
        self.orders = ReliableQueue(redis, QUEUE_BROKER_ORDERS)
        self.fills = ReliableQueue(redis, QUEUE_BROKER_FILLS)
        self.instance_id = uuid.uuid4().hex
        self.settings = EngineSettings()
        self.correlations = CorrelationMatrix.empty()
        self.last_stop_check: datetime | None = None
        self.last_decision_at: datetime | None = None
        self.started = False
        self._lock_connection: asyncpg.Connection | None = None
        self._wake = asyncio.Event()

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
                self.pool, now.astimezone(trading_window.NEW_YORK).date(), now)
        except Exception as exc:  # noqa: BLE001 - an empty matrix (all 0.0) is a safe start
            log.warning("correlations unavailable at start; treating pairs as unknown", error=str(exc))
        self.started = True
        log.info("engine started", mode=self.mode.value, risk_tier=self.settings.risk_tier.value,
                 enabled=self.settings.enabled, paused=self.settings.paused)

    async def _take_lock(self, timeout: float | None) -> None:
        # The lock lives as long as this connection: it is held out of the pool until stop.
        self._lock_connection = await self.pool.acquire()
        if await self._lock_connection.fetchval("SELECT pg_try_advisory_lock($1)", ENGINE_LOCK_KEY):
            return
        log.warning("another engine holds this account's lock; waiting for it to stop")
        waiting = self._lock_connection.fetchval("SELECT pg_advisory_lock($1)", ENGINE_LOCK_KEY)
        await asyncio.wait_for(waiting, timeout)

    async def stop(self) -> None:
        """Graceful stop: nothing in flight is lost (undelivered jobs stay in the outbox and
        half-applied reports in the processing list), so stopping is releasing the lock."""
        self.started = False
        holding = self.holds_lock
        connection, self._lock_connection = self._lock_connection, None
        if holding:
            try:
                await connection.execute("SELECT pg_advisory_unlock($1)", ENGINE_LOCK_KEY)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("could not release the account lock cleanly; it ends with its connection",
                            error=str(exc))
            finally:
                await self.pool.release(connection)
        log.info("engine stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """The live loop: a full tick every polling interval (the safety net), and in between
        the decision step alone as soon as a recommendation is inserted (NOTIFY)."""
        listener = await self._listen()
        loop = asyncio.get_running_loop()
        next_full_tick = loop.time()
        try:
            while not stop.is_set():
                # Cleared before the step: a NOTIFY arriving during it wakes the next one.
                self._wake.clear()
                if loop.time() >= next_full_tick:
                    await self.tick()
                    next_full_tick = loop.time() + self.settings.polling_interval.total_seconds()
                else:
                    await self.decide_pending()
                waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waits, timeout=max(next_full_tick - loop.time(), 0),
                                   return_when=asyncio.FIRST_COMPLETED)
                for waiter in waits:
                    waiter.cancel()
        finally:
            if listener is not None:
                await listener.close()

    async def decide_pending(self) -> TickReport:
        """The fast path for a new recommendation: decide what is waiting and send it."""
        now = self.clock.now()
        report = TickReport(now)
        if not self.holds_lock:  # checked without I/O here; the full tick pings and re-takes it
            return report
        timer = telemetry.tick_started(self.settings.polling_interval.total_seconds())
        loaded = await self._guarded("settings", self.store.load_settings(), report)
        if loaded is not None:
            self.settings = loaded
        if trading_window.is_within_trading_window(now):
            await self._guarded("recommendations", self._decide_recommendations(now, report), report)
            report.orders_sent = await self._guarded("outbox", self._deliver(now), report, default=0)
        return telemetry.record_tick(report, timer)

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            connection = await self.pool.acquire()
            await connection.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            return _Releasing(self.pool, connection)
        except Exception as exc:  # noqa: BLE001 - the poll still finds everything
            log.warning("no LISTEN connection; relying on polling", error=str(exc))
            return None

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
        self._lock_connection = None
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
        await self._guarded("breakers", self._resolve_breakers(now), report)
        await self._guarded("fills", self._apply_reports(now, report), report)
        if trading_window.is_market_open(now):
            await self._guarded("session", self._open_session(now), report)
            await self._guarded("protection", self._protect(now, report), report)
        if trading_window.is_within_trading_window(now):
            await self._guarded("recommendations", self._decide_recommendations(now, report), report)
            await self._guarded("rebalance", self._weekly_rebalance(now, report), report)
        sent = await self._guarded("outbox", self._deliver(now), report)
        report.orders_sent = sent or 0
        await self._guarded("session_close", self._close_session_if_due(now), report)
        await self._guarded("reports", self._send_reports(now), report)
        return telemetry.record_tick(report, timer)

    async def _guarded(self, component: str, work: Awaitable[Any], report: TickReport | None = None,
                       default: Any = None) -> Any:
        try:
            return await work
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
            message = f"{type(exc).__name__}: {exc}"
            log.error("engine step failed; will retry next tick", component=component, error=message)
            if report is not None:
                report.faults.append(f"{component}: {message}")
            try:
                await self.store.record_fault(component, message)
            except Exception:  # noqa: BLE001 - PostgreSQL itself may be what failed
                pass
            return default

    # -- steps --------------------------------------------------------------------------

    async def _resolve_breakers(self, now: datetime) -> None:
        state = await self.store.breaker_state()
        _, resolutions = circuit_breaker.resolve_expired(state, now)
        for resolution in resolutions:
            await self.store.resolve_breaker_events(resolution, now)
            log.info("circuit breaker resolved", reason=resolution.reason, ticker=resolution.ticker)
            if resolution.ticker is None:
                self.notifier.notify(events.from_breaker_resolution(resolution))

    async def _record_breaker_event(self, event: CircuitBreakerEvent) -> None:
        await self.store.record_breaker_event(event)
        log.warning("circuit breaker tripped", trigger=event.trigger_type.value, reason=event.reason)
        self.notifier.notify(events.from_breaker_event(event))

    async def _apply_reports(self, now: datetime, report: TickReport) -> None:
        stop_outs = False
        while (message := await self.fills.take_nowait()) is not None:
            try:
                fill = FillReport.model_validate_json(message)
            except ValidationError as exc:
                log.error("malformed broker report parked", error=str(exc).splitlines()[0])
                await self.fills.dead_letter(message)
                continue
            effects = await apply_report(self.pool, fill, self.settings)
            await self.fills.ack(message)
            if effects is not None:
                report.reports_applied += 1
                stop_outs |= effects.stop_out
                self._announce(effects)
        if stop_outs:
            await self._check_volatility(now)

    def _announce(self, effects: FillEffects) -> None:
        """Every close goes to the service, which keeps those over the owner's threshold."""
        trade = effects.closed_trade
        if trade is not None:
            self.notifier.notify(events.large_trade_pnl(
                trade.exit_at, ticker=trade.ticker, quantity=trade.quantity, entry_price=trade.entry_price,
                exit_price=trade.exit_price, realized_pnl=trade.pnl, pnl_pct=trade.pnl_pct,
                exit_reason=effects.report.reason.value))

    async def _check_volatility(self, now: datetime) -> None:
        stop_outs = await self.store.stop_outs_since(now - self.settings.breakers.volatility_window)
        check = circuit_breaker.check_volatility(await self.store.breaker_state(), stop_outs, now,
                                                 self.settings.breakers)
        if check.event is not None:
            await self._record_breaker_event(check.event)

    async def _open_session(self, now: datetime) -> None:
        """Remember the account's value at the session's first tick: the daily-loss base."""
        state = await self.store.engine_state(now)
        today = now.astimezone(trading_window.NEW_YORK).date()
        if state["session_date"] == today:
            return
        # Valued at the last close: a gap at the open is the day's first loss, not its base.
        last_close = trading_window.previous_session_close(now)
        quotes = await self.market.prices.quotes(await self.store.held_tickers(), last_close)
        value = (await self.store.holdings(quotes)).total_value
        await self.store.update_engine_state(session_date=today, start_of_day_value=value)

    def _stop_check_due(self, now: datetime, high_severity: bool) -> bool:
        interval = self.settings.fast_stop_check_interval if high_severity else self.settings.stop_check_interval
        return self.last_stop_check is None or now - self.last_stop_check >= interval

    async def _protect(self, now: datetime, report: TickReport) -> None:
        high_severity = await self.market.high_severity_event(now)
        if not self._stop_check_due(now, high_severity):
            return
        self.last_stop_check = now
        quotes = await self.market.prices.quotes(await self.store.held_tickers(), now)
        held = await self.store.held_positions(quotes)
        portfolio = await self.store.portfolio(quotes)
        breakers = await self.store.breaker_state()
        await self._check_daily_loss(await self.store.holdings(quotes), breakers, now)
        markets = {h.position.ticker: PositionMarket(await self.market.atr(h.position.ticker, now),
                                                     _soon(await self.market.sessions_until_earnings(
                                                         h.position.ticker, now), self.settings))
                   for h in held}
        exiting = frozenset([t for t in quotes if await outbox.open_exit_exists(self.pool, t)])
        plan = protect(held, quotes, markets, breakers, self.settings, now, high_severity_event=high_severity,
                       total_value=portfolio.total_value, exiting=exiting)
        await self.store.save_stop_levels(plan.level_updates, now)
        for event in plan.breaker_events:
            await self._record_breaker_event(event)
        context = DecisionContext(portfolio, plan.breakers, self.settings, self.correlations)
        for exit_ in plan.exits:
            await self._send_exit(exit_, context, now, report)

    async def _check_daily_loss(self, portfolio: PortfolioState, breakers, now: datetime) -> None:
        state = await self.store.engine_state(now)
        if state["start_of_day_value"] is None or circuit_breaker.is_active(breakers, now):
            return
        check = circuit_breaker.check_daily_loss(breakers, state["start_of_day_value"], portfolio.total_value, now,
                                                 settings=self.settings.breakers)
        if check.event is not None:
            await self._record_breaker_event(check.event)

    async def _send_exit(self, exit_: Exit, context: DecisionContext, now: datetime, report: TickReport) -> None:
        outcome = exit_decision(exit_.ticker, exit_.quantity, exit_.reason, exit_.detail, context, now=now,
                                decision_id=uuid.uuid4(), price=exit_.price, is_micro=exit_.is_micro)
        async with self.pool.acquire() as connection:
            await outbox.record_decision(connection, outcome, self.mode)
        report.exits += 1
        log.info("exit decided", ticker=exit_.ticker, reason=exit_.reason.value, detail=exit_.detail)

    async def _decide_recommendations(self, now: datetime, report: TickReport) -> None:
        state = await self.store.engine_state(now)
        while True:  # in pages, until none is left: a burst must not wait for the next poll
            page = await self.store.undecided_recommendations(state["epoch"], now, limit=RECOMMENDATION_PAGE)
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
        quotes = await self.market.prices.quotes([*await self.store.held_tickers(), rec.ticker], now)
        portfolio = await self.store.portfolio(quotes)
        micro_today = await self.store.micro_entries_since(_session_start(now))
        context = DecisionContext(portfolio, await self.store.breaker_state(), self.settings, self.correlations,
                                  micro_today)
        market = await self.market.view(rec.ticker, now, quote=quotes.get(rec.ticker))
        try:
            outcome = decide(rec, market, context, now=now, decision_id=uuid.uuid4())
        except Exception as exc:  # noqa: BLE001 - a defect must not retry forever
            log.exception("decision core failed on a recommendation; recorded as a skip", recommendation_id=rec.id)
            outcome = failed_decision(rec, market, context, now=now, decision_id=uuid.uuid4(),
                                      error=f"{type(exc).__name__}: {exc}")
        async with self.pool.acquire() as connection:
            recorded = await outbox.record_decision(connection, outcome, self.mode, rec.confidence)
        if not recorded:
            log.info("recommendation already decided", recommendation_id=rec.id)
            return None
        self.last_decision_at = now
        log.info("decided", recommendation_id=rec.id, ticker=rec.ticker, decision=outcome.decision.decision.value,
                 shares=str(outcome.decision.computed_share_quantity), reason=outcome.decision.skip_reason)
        return outcome

    async def _unmark(self, recommendation_id: int) -> None:
        try:
            await self.redis.delete(dedupe_key(recommendation_id))
        except Exception:  # noqa: BLE001 - an expired or lost mark is harmless: the database decides
            pass

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
        log.warning("recommendation marked by an earlier run that did not finish; deciding it now",
                    recommendation_id=recommendation_id)
        return True

    async def _weekly_rebalance(self, now: datetime, report: TickReport) -> None:
        """Once a week, at the first trading window of the week (Monday's, or the next)."""
        year, week, _ = now.astimezone(trading_window.NEW_YORK).isocalendar()
        label = f"{year}-W{week:02d}"
        state = await self.store.engine_state(now)
        if state["last_rebalance_week"] == label:
            return
        await self.store.update_engine_state(last_rebalance_week=label)
        quotes = await self.market.prices.quotes(await self.store.held_tickers(), now)
        portfolio = await self.store.portfolio(quotes)
        breakers = await self.store.breaker_state()
        plan = rebalancer.evaluate(portfolio, self.settings.tier, within_trading_window=True,
                                   circuit_breaker_active=circuit_breaker.is_active(breakers, now),
                                   settings=self.settings.rebalance)
        if plan.deferred:
            log.info("weekly rebalance deferred", reason=plan.deferred_reason)
            return
        context = DecisionContext(portfolio, breakers, self.settings, self.correlations)
        for proposal in plan.proposals:
            price = quotes[proposal.ticker].price if proposal.ticker in quotes else None
            await self._send_exit(Exit(proposal.ticker, proposal.quantity, OrderReason.REBALANCE, proposal.reason,
                                       price), context, now, report)

    async def _deliver(self, now: datetime) -> int:
        settings = self.settings
        breakers = await self.store.breaker_state()

        def may_send(row) -> str | None:  # a later tranche is re-checked before it goes
            if settings.paused or not settings.enabled:
                return "engine paused or disabled before the tranche was due"
            if circuit_breaker.is_active(breakers, now):
                return "a circuit breaker tripped before the tranche was due"
            if not trading_window.is_within_trading_window(now):
                return "the trading window closed before the tranche was due"
            return None

        return await outbox.deliver_due(self.pool, self.orders, now, may_send)

    async def _close_session_if_due(self, now: datetime) -> None:
        session_close = trading_window.previous_session_close(now)
        session = session_close.astimezone(trading_window.NEW_YORK).date()
        state = await self.store.engine_state(now)
        if state["last_close_processed"] is not None and state["last_close_processed"] >= session:
            return
        if session_close < state["epoch"]:
            return
        # Valued at the session's closing prices, whenever the engine gets to it.
        quotes = await self.market.prices.quotes(await self.store.held_tickers(), session_close)
        portfolio = await self.store.holdings(quotes)
        start_value = state["start_of_day_value"] if state["session_date"] == session else portfolio.total_value
        result = await close_session(self.store, session, portfolio, self.settings, start_value, now)
        self.correlations = result.correlations
        await self.store.update_engine_state(last_close_processed=session)
        metrics = result.report.metrics
        if result.tier_change is not None:
            self.notifier.notify(events.from_risk_tier_change(result.tier_change))
        if result.emergency is not None:
            self.notifier.notify(events.emergency_liquidation(
                now, drawdown=metrics.current_drawdown,
                threshold=self.settings.reserve.emergency_drawdown_threshold_pct,
                reserve_released=-result.emergency.amount, positions_closed=0,
                total_value=metrics.total_portfolio_value, reason=result.emergency.notes))
        log.info("session closed", session=str(session), value=str(result.report.metrics.total_portfolio_value),
                 reserve=str(result.report.metrics.reserve_pool))


    async def _send_reports(self, now: datetime) -> None:
        """The daily summary and weekly digest, when the notification service says they are due."""
        reports_due = getattr(self.notifier, "reports_due", None)
        if reports_due is None:
            return
        for report in await reports_due():
            if report.kind is NotificationEventType.DAILY_SUMMARY:
                await self.notifier.send_daily_summary(report, await owner_reports.daily_summary(self.pool, report, now))
            else:
                await self.notifier.send_weekly_digest(report, await owner_reports.weekly_digest(self.pool, report, now))


def _soon(sessions: int | None, settings: EngineSettings) -> bool:
    return sessions is not None and sessions <= settings.sizing.earnings_reduce_within_sessions


def _session_start(now: datetime) -> datetime:
    times = trading_window.session_times(now.astimezone(trading_window.NEW_YORK).date())
    return times[0] if times else now - timedelta(days=1)


class _Releasing:
    """A pooled LISTEN connection handed back to its pool on close."""

    def __init__(self, pool: asyncpg.Pool, connection: asyncpg.Connection) -> None:
        self.pool = pool
        self.connection = connection

    async def close(self) -> None:
        await self.connection.reset()
        await self.pool.release(self.connection)
