"""The engine's protective and scheduled duties (seed tasks 6–9, 15, 25): applying broker
reports, resolving and tripping circuit breakers, the protective pass over open positions,
the session's open and close, the weekly rebalance and the owner's reports.

`TradingEngine` owns the loop and the decisions; it calls these at each tick. Every rule is
the decision core's; these methods read state, call the rule, and persist what it decided.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog
from pydantic import ValidationError

from services.shared.faults import TRANSIENT_ERRORS
from services.shared.orders import FillReport
from services.shared.schemas import NotificationEventType, OrderReason
from services.trading.core import circuit_breaker, rebalancer, trading_window
from services.trading.core.circuit_breaker import CircuitBreakerEvent
from services.trading.core.decision import DecisionContext, exit_decision
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import PortfolioState
from services.trading.core.protection import Exit, PositionMarket, protect
from services.trading.live import breaker_cache, outbox, owner_reports
from services.trading.live.fill_handler import FillEffects, apply_report
from services.trading.live.session_close import close_session
from services.trading.market.recent_prices import rapid_moves
from services.trading.notifications import events

if TYPE_CHECKING:
    from services.trading.live.engine import TickReport, TradingEngine

log = structlog.get_logger(__name__)
# A report that fails to apply this many times (never counting a server being down) is parked.
MAX_REPORT_ATTEMPTS = 5
REPORT_ATTEMPTS_SUFFIX = ":attempts"


class AccountDuties:
    """Everything a tick does besides deciding recommendations, over the engine's adapters."""

    def __init__(self, engine: TradingEngine) -> None:
        self.engine = engine
        self.pool = engine.pool
        self.store = engine.store
        self.market = engine.market
        self.fills = engine.fills
        self.mode = engine.mode
        self.last_stop_check: datetime | None = None

    @property
    def settings(self) -> EngineSettings:
        return self.engine.settings

    @property
    def notifier(self):
        return self.engine.notifier

    @property
    def correlations(self):
        return self.engine.correlations

    async def resolve_breakers(self, now: datetime) -> None:
        state = await self.store.breaker_state()
        _, resolutions = circuit_breaker.resolve_expired(state, now)
        for resolution in resolutions:
            await self.store.resolve_breaker_events(resolution, now)
            log.info("circuit breaker resolved", reason=resolution.reason, ticker=resolution.ticker)
            # A ticker's cooldown ending is announced too, as docs/notifications.md promises.
            self.notifier.notify(events.from_breaker_resolution(resolution))
        await self._mirror_breakers(now)  # every full tick: the mirror heals after a Redis restart

    async def _record_breaker_event(self, event: CircuitBreakerEvent) -> None:
        await self.store.record_breaker_event(event)
        log.warning("circuit breaker tripped", trigger=event.trigger_type.value, reason=event.reason)
        self.notifier.notify(events.from_breaker_event(event))
        await self._mirror_breakers(event.triggered_at)

    async def _mirror_breakers(self, now: datetime) -> None:
        await breaker_cache.publish(self.engine.redis, await self.store.breaker_state(), now)

    async def apply_reports(self, now: datetime, report: TickReport) -> None:
        """Apply every broker report waiting, in the order the broker sent them. Reports left
        half-handled by an earlier pass go first (applying twice is a no-op: `applied_fills` is
        keyed by client_order_id). A report that fails is kept for the next pass, and so are the
        later reports of its ticker (a sale must never be applied before the buy it sells);
        other tickers go on. It is parked after MAX_REPORT_ATTEMPTS; a server that is down
        ends the pass (nothing counted)."""
        await self.fills.recover()  # the engine is the queue's only consumer
        stop_outs = False
        held_back: set[str] = set()  # tickers whose earlier report failed in this pass
        while (message := await self.fills.take_nowait()) is not None:
            try:
                fill = FillReport.model_validate_json(message)
            except ValidationError as exc:
                log.error("malformed broker report parked", error=str(exc).splitlines()[0])
                await self.fills.dead_letter(message)
                continue
            if fill.ticker in held_back:  # stays in the processing list, in order, for the next pass
                continue
            try:
                effects = await apply_report(self.pool, fill, self.settings)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad report must not block other tickers
                if not await self._report_failed(message, fill, exc, report):
                    held_back.add(fill.ticker)
                continue
            await self.fills.ack(message)
            await self.fills.client.hdel(self._attempts_key, _digest(message))
            if effects is not None:
                report.reports_applied += 1
                stop_outs |= effects.stop_out
                self._announce(effects)
        if stop_outs:
            await self._check_volatility(now)

    @property
    def _attempts_key(self) -> str:
        return f"{self.fills.name}{REPORT_ATTEMPTS_SUFFIX}"

    async def _report_failed(
        self, message: str, fill: FillReport, exc: Exception, report: TickReport
    ) -> bool:
        """Count a failed application (in Redis, so a restart does not reset it); park the
        report once it has failed too often, loudly: its effects need the owner's attention.
        True when it was parked."""
        error = f"{type(exc).__name__}: {exc}"
        attempts = await self.fills.client.hincrby(self._attempts_key, _digest(message), 1)
        report.faults.append(f"fills: {fill.client_order_id}: {error}")
        await self.store.record_fault(
            "fills", f"report {fill.client_order_id} failed (attempt {attempts}): {error}"
        )
        if attempts < MAX_REPORT_ATTEMPTS:
            log.error(
                "broker report failed to apply; retried next tick",
                client_order_id=fill.client_order_id,
                attempt=attempts,
                error=error,
            )
            return False
        log.critical(
            "broker report parked after repeated failures; apply it by hand",
            attempts=attempts,
            client_order_id=fill.client_order_id,
            ticker=fill.ticker,
            error=error,
        )
        await self.fills.dead_letter(message)
        await self.fills.client.hdel(self._attempts_key, _digest(message))
        return True

    def _announce(self, effects: FillEffects) -> None:
        """Every close goes to the service, which keeps those over the owner's threshold; every
        refusal by the broker goes too, with the broker's reason (the engine never retries it)."""
        fill = effects.report
        if fill.status == "rejected":
            self.notifier.notify(
                events.order_rejected(
                    fill.at,
                    ticker=fill.ticker,
                    side=fill.side.value,
                    quantity=fill.quantity,
                    order_reason=fill.reason.value,
                    reject_reason=fill.reject_reason,
                    client_order_id=fill.client_order_id,
                    tranches_cancelled=effects.tranches_cancelled,
                )
            )
        trade = effects.closed_trade
        if trade is not None:
            self.notifier.notify(
                events.large_trade_pnl(
                    trade.exit_at,
                    ticker=trade.ticker,
                    quantity=trade.quantity,
                    entry_price=trade.entry_price,
                    exit_price=trade.exit_price,
                    realized_pnl=trade.pnl,
                    pnl_pct=trade.pnl_pct,
                    exit_reason=effects.report.reason.value,
                )
            )

    async def _check_volatility(self, now: datetime) -> None:
        stop_outs = await self.store.stop_outs_since(now - self.settings.breakers.volatility_window)
        check = circuit_breaker.check_volatility(
            await self.store.breaker_state(), stop_outs, now, self.settings.breakers
        )
        if check.event is not None:
            await self._record_breaker_event(check.event)

    async def open_session(self, now: datetime) -> None:
        """Remember the account's value at the session's first tick: the daily-loss base."""
        state = await self.store.engine_state(now)
        today = now.astimezone(trading_window.NEW_YORK).date()
        if state["session_date"] == today:
            return
        # Valued at the last close: a gap at the open is the day's first loss, not its base.
        last_close = trading_window.previous_session_close(now)
        held = await self.store.held()
        quotes = await self.market.prices.quotes(held.tickers, last_close)
        value = held.holdings(held.positions(quotes)).total_value
        await self.store.update_engine_state(session_date=today, start_of_day_value=value)

    def _stop_check_due(self, now: datetime, high_severity: bool, micro_held: bool) -> bool:
        """The protective pass is due every stop-check interval (the fast one during a
        high-severity event), and every micro-trade interval while a micro-trade is held: its
        tight stop and its maximum hold (120 minutes) are what that interval is for."""
        interval = (
            self.settings.fast_stop_check_interval if high_severity else self.settings.stop_check_interval
        )
        if micro_held:
            interval = min(interval, self.settings.micro_polling_interval)
        return self.last_stop_check is None or now - self.last_stop_check >= interval

    async def protect(self, now: datetime, report: TickReport) -> None:
        high_severity = await self.market.high_severity_event(now)
        account = await self.store.held()
        micro_held = any(r["is_micro_trade"] for r in account.rows)
        # A rapid move (seed task 13.1) brings the protective pass forward.
        if not self._stop_check_due(now, high_severity, micro_held) and not await rapid_moves(
            self.pool, account.tickers, now, since=self.last_stop_check
        ):
            return
        self.last_stop_check = now
        quotes = await self.market.prices.quotes(account.tickers, now)
        held = account.positions(quotes)
        portfolio = account.portfolio(held, quotes)
        breakers = await self.store.breaker_state()
        await self._check_daily_loss(account.holdings(held), breakers, now)
        markets = {
            h.position.ticker: PositionMarket(
                await self.market.atr(h.position.ticker, now),
                _soon(await self.market.sessions_until_earnings(h.position.ticker, now), self.settings),
            )
            for h in held
        }
        exiting = frozenset([t for t in quotes if await outbox.open_exit_exists(self.pool, t)])
        plan = protect(
            held,
            quotes,
            markets,
            breakers,
            self.settings,
            now,
            high_severity_event=high_severity,
            total_value=portfolio.total_value,
            exiting=exiting,
        )
        await self.store.save_stop_levels(plan.level_updates, now)
        for event in plan.breaker_events:
            await self._record_breaker_event(event)
        context = DecisionContext(portfolio, plan.breakers, self.settings, self.correlations)
        for exit_ in plan.exits:
            await self.send_exit(exit_, context, now, report)

    async def _check_daily_loss(self, portfolio: PortfolioState, breakers, now: datetime) -> None:
        state = await self.store.engine_state(now)
        if state["start_of_day_value"] is None or circuit_breaker.daily_loss_halt_in_force(breakers, now):
            return
        check = circuit_breaker.check_daily_loss(
            breakers, state["start_of_day_value"], portfolio.total_value, now, settings=self.settings.breakers
        )
        if check.event is not None:
            await self._record_breaker_event(check.event)

    async def send_exit(
        self, exit_: Exit, context: DecisionContext, now: datetime, report: TickReport
    ) -> None:
        outcome = exit_decision(
            exit_.ticker,
            exit_.quantity,
            exit_.reason,
            exit_.detail,
            context,
            now=now,
            decision_id=uuid.uuid4(),
            price=exit_.price,
            is_micro=exit_.is_micro,
        )
        async with self.pool.acquire() as connection:
            await outbox.record_decision(connection, outcome, self.mode)
        report.exits += 1
        log.info("exit decided", ticker=exit_.ticker, reason=exit_.reason.value, detail=exit_.detail)

    async def weekly_rebalance(self, now: datetime, report: TickReport) -> None:
        """Once a week, at the first trading window of the week (Monday's, or the next)."""
        year, week, _ = now.astimezone(trading_window.NEW_YORK).isocalendar()
        label = f"{year}-W{week:02d}"
        state = await self.store.engine_state(now)
        if state["last_rebalance_week"] == label:
            return
        held = await self.store.held()
        quotes = await self.market.prices.quotes(held.priced_tickers, now)
        # Trims are sized from filled shares: unfilled buys cannot be sold.
        portfolio = held.portfolio(held.positions(quotes), quotes, pending_buys=False)
        breakers = await self.store.breaker_state()
        plan = rebalancer.evaluate(
            portfolio,
            self.settings.tier,
            within_trading_window=True,
            circuit_breaker_active=circuit_breaker.is_active(breakers, now),
            settings=self.settings.rebalance,
        )
        if plan.deferred:  # tried again next tick: the week is not done until its plan ran
            log.info("weekly rebalance deferred", reason=plan.deferred_reason)
            return
        context = DecisionContext(portfolio, breakers, self.settings, self.correlations)
        for proposal in plan.proposals:
            price = quotes[proposal.ticker].price if proposal.ticker in quotes else None
            await self.send_exit(
                Exit(proposal.ticker, proposal.quantity, OrderReason.REBALANCE, proposal.reason, price),
                context,
                now,
                report,
            )
        # Marked last: a step that raised retries next tick, and the trims already sent
        # count as pending sells, so the new plan asks only for what is left.
        await self.store.update_engine_state(last_rebalance_week=label)

    async def close_session_if_due(self, now: datetime) -> None:
        session_close = trading_window.previous_session_close(now)
        session = session_close.astimezone(trading_window.NEW_YORK).date()
        state = await self.store.engine_state(now)
        if state["last_close_processed"] is not None and state["last_close_processed"] >= session:
            return
        if session_close < state["epoch"]:
            return
        # Valued at the session's closing prices, whenever the engine gets to it.
        held = await self.store.held()
        quotes = await self.market.prices.quotes(held.tickers, session_close)
        portfolio = held.holdings(held.positions(quotes))
        start_value = (
            state["start_of_day_value"] if state["session_date"] == session else portfolio.total_value
        )
        # Records last_close_processed in the close's own transaction.
        result = await close_session(self.store, session, portfolio, self.settings, start_value, now)
        self.engine.correlations = result.correlations
        metrics = result.report.metrics
        if result.tier_change is not None:
            self.notifier.notify(events.from_risk_tier_change(result.tier_change))
        if result.emergency_reason is not None:
            # The emergency rule releases the reserve and forces the conservative tier; it
            # closes no position (docs/contracts.md section 6), hence positions_closed 0.
            released = -result.emergency.amount if result.emergency is not None else Decimal(0)
            self.notifier.notify(
                events.emergency_liquidation(
                    now,
                    drawdown=metrics.current_drawdown,
                    threshold=self.settings.reserve.emergency_drawdown_threshold_pct,
                    reserve_released=released,
                    positions_closed=0,
                    total_value=metrics.total_portfolio_value,
                    reason=result.emergency_reason,
                )
            )
        if result.high_water_crossed:  # no owner event type fits yet: see the snapshot's metrics
            log.warning(
                "reserve crossed its high-water mark: the owner may withdraw or rebalance",
                reason=result.high_water,
            )
        log.info(
            "session closed",
            session=str(session),
            value=str(result.report.metrics.total_portfolio_value),
            reserve=str(result.report.metrics.reserve_pool),
        )

    async def send_reports(self, now: datetime) -> None:
        """The daily summary and weekly digest, when the notification service says they are due."""
        reports_due = getattr(self.notifier, "reports_due", None)
        if reports_due is None:
            return
        for report in await reports_due():
            if report.kind is NotificationEventType.DAILY_SUMMARY:
                await self.notifier.send_daily_summary(
                    report, await owner_reports.daily_summary(self.pool, report, now)
                )
            else:
                await self.notifier.send_weekly_digest(
                    report, await owner_reports.weekly_digest(self.pool, report, now)
                )


def _digest(message: str) -> str:
    return hashlib.sha256(message.encode()).hexdigest()


def _soon(sessions: int | None, settings: EngineSettings) -> bool:
    return sessions is not None and sessions <= settings.sizing.earnings_reduce_within_sessions
