"""One backtest, session by session, through the engine's own rules (seed task 19.1).

Each session, in this order:

1. At the open (09:30 New York): expired halts and cooldowns resolve; holdings are priced at
   the open; stops, take-profits and the single-position breaker that the open gapped through
   fill at the open; the daily-loss breaker is checked on the value at the open; orders due
   today fill (later tranches of gradual entries, after the entry gates are checked again);
   on the first session of a week the rebalancer runs.
2. At the window opening (09:45) and later in the session: the recommendations due are
   decided by `decision.decide`, with the open as the price, ATR(14) of the bars completed so
   far and correlations of the last 90 completed sessions. Orders decided at 09:45 fill at
   this open; tranche i fills `tranche_spacing_sessions * (i - 1)` sessions later.
3. Over the rest of the bar: stops, take-profits and the single-position breaker are checked
   against the low and high (stop first when both are touched); stop-outs feed the
   volatility breaker.
4. At the close: holdings are priced at the close; the core's stop maintenance
   (`protection.maintain_stops`, as the live protective pass) trails on the bar's high,
   re-evaluates standard stops when ATR or the multiplier moved and tightens for heat (all
   effective from the next bar), and micro-trades past their hold are sold at the close; the
   end-of-day value joins the equity curve; the daily-loss breaker is checked, and the core's
   session close (`close_of_session`, as live) applies the emergency release, then the tier.

A missing bar is skipped for its ticker (the holding keeps its last price) and reported as a
gap. Nothing here is random and nothing reads the clock: the same inputs give the same result.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

import numpy as np

from services.shared.schemas import OrderReason, OrderSide, RiskTierName
from services.trading.backtest.book import Book, Holding, StopPlan
from services.trading.backtest.config import BacktestConfig, FillTiming
from services.trading.backtest.context import MarketContext
from services.trading.backtest.exits import find_exits
from services.trading.backtest.market import to_decimal
from services.trading.backtest.results import BacktestEvent, DecisionRecord
from services.trading.backtest.signals import ScheduledRecommendation
from services.trading.core import (
    circuit_breaker,
    close_of_session,
    performance_tracker,
    rebalancer,
    stop_loss_manager,
    tranche_check,
)
from services.trading.core.close_of_session import CloseFigures
from services.trading.core.decision import SELL, DecisionContext, decide, takes_micro_path
from services.trading.core.models import CircuitBreakerState, ClosedTrade, HeldPosition, PortfolioState
from services.trading.core.protection import PositionMarket, maintain_stops, protect
from services.trading.core.quote import Quote
from services.trading.core.replay_instants import session_instants
from services.trading.core.trading_window import NEW_YORK, WINDOW_BUFFER, is_within_trading_window
from services.trading.core.unfilled_orders import UnfilledOrder, account_with_unfilled

DECISION_ID_BASE = 0xB4C7 << 112  # decision ids of a backtest: this prefix + a sequence number
EXIT_ID_BASE = 0xB4C8 << 112  # ids of the exits the protective pass decides (live timing)
STOP_OUTS = ("stop_loss", "trailing_stop")
ATR_TRIGGER_MARGIN = 0.9  # re-read the core ATR when the float estimate moved 90% of the threshold
Progress = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class PendingOrder:
    ticker: str
    side: OrderSide
    quantity: Decimal
    decision_id: uuid.UUID
    recommendation_id: int
    tranche_index: int
    tranche_count: int
    plan: StopPlan | None
    is_micro: bool = False
    # Live timing: the instant it may be sent, the session of its decision, a sell's reason.
    not_before: datetime | None = None
    session: date | None = None
    reason: str = OrderReason.SIGNAL.value

    def unfilled(self, sector: str) -> UnfilledOrder:
        return UnfilledOrder(self.ticker, str(self.side), self.quantity, sector, self.plan)


class Simulation:
    def __init__(
        self,
        config: BacktestConfig,
        context: MarketContext,
        schedule: dict[int, list[ScheduledRecommendation]],
        first: int,
        last: int,
        progress: Progress | None = None,
    ) -> None:
        self.config, self.context, self.market = config, context, context.market
        self.settings = config.settings
        self.schedule, self.first, self.last = schedule, first, last
        self.progress = progress
        self.book = Book(config.initial_capital, config.fill, self.settings.reserve)
        self.breakers = CircuitBreakerState()
        self.decisions: list[DecisionRecord] = []
        self.events: list[BacktestEvent] = []
        self.equity: list[tuple] = []
        self.pending: dict[int, list[PendingOrder]] = {}
        self.cancelled: dict[uuid.UUID, str] = {}
        self.stop_outs: deque[datetime] = deque(maxlen=64)
        self.recent: deque[ClosedTrade] = deque()
        self.tier_memory = None  # the tier controller's memory, from one close to the next
        self.peak = self.day_start_value = config.initial_capital
        self.opened_today: set[str] = set()
        self.micro_today = 0  # micro-trade entries decided this session: the daily limit counts them
        self.day: int | None = None  # the session being simulated (where a failure happened)
        self.as_live = config.fill.timing is FillTiming.LIVE
        self.queued: list[PendingOrder] = []  # live timing: orders decided, not yet sent
        self._orders_version = 0  # bumped by every change to pending, queued or cancelled
        self._seen_portfolio: dict[tuple, tuple[PortfolioState, PortfolioState]] = {}
        self.exits_decided = 0
        self.rebalanced_week: tuple[int, int] | None = None
        self.week_starts = {
            d
            for d in range(first + 1, last + 1)
            if self.market.sessions[d].isocalendar()[:2] != self.market.sessions[d - 1].isocalendar()[:2]
        }

    def run(self) -> None:
        """Every session of the range; raises whatever a rule raises (the caller keeps the
        partial result)."""
        sessions = self.last - self.first + 1
        step = max(1, sessions // 200)
        for n, day in enumerate(range(self.first, self.last + 1), start=1):
            self.day = day
            if self.as_live:
                self._session_as_live(day)
            else:
                self._open(day)
                for item in self.schedule.get(day, ()):
                    self._decide(item, day)
                self._exits(day, at_open=False)
                self._price_holdings(self.market.close, day)
                self._maintain_stops(day, self.market.session_close[day])
                self._daily_loss(self.book.value(), self.market.session_close[day])
                self._close(day)
            if self.progress is not None and (n % step == 0 or n == sessions):
                self.progress(n / sessions)

    # -- a session as the live engine replays it (FillTiming.LIVE) ---------------------------

    def _session_as_live(self, day: int) -> None:
        """The session at the live replay's instants (`replay_instants.session_instants`), each
        as one engine tick with the broker filling at once: breakers resolved, the protective
        pass (`protection.protect`, the engine's own), the recommendations due decided, the
        week's rebalance, due orders sent and filled at the open; then the close."""
        *during, closing = session_instants(self.market.sessions[day])
        self.opened_today = set()
        self.micro_today = 0
        self.day_start_value = self.equity[-1][1] if self.equity else self.config.initial_capital
        self._price_holdings(self.market.open, day)
        due = deque(self.schedule.get(day, ()))
        for at in during:
            self._resolve_breakers(at)
            self._protect(day, at)
            while due and due[0].decide_at <= at:
                self._decide(due.popleft(), day, at)
            if self.config.rebalance_weekly:
                self._rebalance_as_live(day, at)
            self._deliver(day, at)
        if due and day < self.last:  # decided at the next window, as the engine's next tick would
            self.schedule.setdefault(day + 1, [])[:0] = list(due)
        self._resolve_breakers(closing)
        self._price_holdings(self.market.close, day)
        self._close(day)

    def _resolve_breakers(self, at: datetime) -> None:
        self.breakers, resolved = circuit_breaker.resolve_expired(self.breakers, at)
        for r in resolved:
            self.events.append(BacktestEvent(at, "breaker_resolved", r.reason, r.ticker))

    def _quotes(self, held: list[Holding], day: int) -> dict[str, Quote]:
        """What the price book says during session `day`: its open, or a ticker's last close."""
        market, quotes = self.market, {}
        for h in held:
            if market.valid[h.row, day]:
                quotes[h.ticker] = Quote(
                    h.ticker, to_decimal(market.open[h.row, day]), market.session_open[day]
                )
                continue
            earlier = np.flatnonzero(market.valid[h.row, :day])
            if earlier.size:
                last = int(earlier[-1])
                quotes[h.ticker] = Quote(
                    h.ticker, to_decimal(market.close[h.row, last]), market.session_close[last]
                )
        return quotes

    def _protect(self, day: int, at: datetime) -> None:
        """The engine's protective pass (`AccountDuties.protect`): the daily-loss breaker on
        the value at these prices, then the core's `protect` (stale prices, stop upkeep,
        crossed levels, the single-position breaker, micro-trades past their hold); its exits
        are queued as the engine queues them in its outbox."""
        self._daily_loss(self.book.value(), at)
        held = list(self.book.holdings.values())
        if not held:
            return
        portfolio = self._decision_portfolio(day)
        positions = [HeldPosition(h.position(), h.levels) for h in held]
        markets = {
            h.ticker: PositionMarket(
                self.market.atr(h.row, day - 1), self.context.earnings_soon(h.ticker, at, self.settings)
            )
            for h in held
        }
        plan = protect(
            positions,
            self._quotes(held, day),
            markets,
            self.breakers,
            self.settings,
            at,
            high_severity_event=self.context.high_severity_event(at),
            total_value=portfolio.total_value,
            exiting=frozenset(o.ticker for o in self.queued if o.side is OrderSide.SELL),
        )
        for ticker, levels in plan.level_updates.items():
            self.book.set_levels(self.book.holdings[ticker], levels)
        self.breakers = plan.breakers
        for event in plan.breaker_events:
            self._breaker_event(event)
        for exit_ in plan.exits:
            self._queue_exit(exit_.ticker, exit_.quantity, exit_.reason.value, exit_.is_micro, at, day)

    def _queue_exit(
        self, ticker: str, quantity: Decimal, reason: str, is_micro: bool, at: datetime, day: int
    ) -> None:
        self.exits_decided += 1
        decision_id = uuid.UUID(int=EXIT_ID_BASE + self.exits_decided)
        order = PendingOrder(
            ticker,
            OrderSide.SELL,
            quantity,
            decision_id,
            0,
            0,
            1,
            None,
            is_micro,
            at,
            self.market.sessions[day],
            reason,
        )
        self._queue(order, at)

    def _queue(self, order: PendingOrder, at: datetime) -> None:
        """An order decided: kept until sent. A sell cancels the ticker's unsent buys, as the
        engine's outbox does: the position is being closed, later tranches must not buy it back."""
        if order.side is OrderSide.SELL:
            for o in self.queued:
                if (
                    o.ticker == order.ticker
                    and o.side is OrderSide.BUY
                    and o.decision_id not in self.cancelled
                ):
                    self._cancel(o, at, "a sell of the ticker was decided")
            self.queued = [o for o in self.queued if o.decision_id not in self.cancelled]
        self.queued.append(order)
        self._orders_changed()

    def _deliver(self, day: int, at: datetime) -> None:
        """Send the orders due, sells first, then by due time and decision order, as the
        outbox does; the broker fills each at once at the open. A first order the core's
        `send_refusal` stops is cancelled with its entry; a later tranche is re-checked
        (`tranche_check`); a verdict of "not now" keeps it for the next instant."""
        due = sorted(
            (o for o in self.queued if o.not_before is not None and o.not_before <= at),
            key=lambda o: (o.side is not OrderSide.SELL, o.not_before),
        )
        stop_outs = len(self.stop_outs)
        for order in due:
            if order.decision_id in self.cancelled:
                continue
            if order.side is OrderSide.BUY and order.tranche_index <= 1:
                refusal = tranche_check.send_refusal(
                    order.ticker, order.session, self.settings, self.breakers, at
                )
                if refusal is not None and refusal.reason is None:
                    continue
                if refusal is not None:
                    self._cancel_decision(order.decision_id, at, refusal.reason)
                    continue
            self.queued.remove(order)
            self._orders_changed()
            self._submit(order, day, at)
        self.queued = [o for o in self.queued if o.decision_id not in self.cancelled]
        if len(self.stop_outs) > stop_outs:
            self._breaker(
                circuit_breaker.check_volatility(self.breakers, self.stop_outs, at, self.settings.breakers)
            )

    def _cancel_decision(self, decision_id: uuid.UUID, at: datetime, reason: str) -> None:
        for o in self.queued:
            if o.decision_id == decision_id:
                self._cancel(o, at, reason)
                break

    # -- the open ---------------------------------------------------------------------------

    def _open(self, day: int) -> None:
        opened = self.market.session_open[day]
        self.opened_today = set()
        self.micro_today = 0
        self.breakers, resolved = circuit_breaker.resolve_expired(self.breakers, opened)
        for r in resolved:
            self.events.append(BacktestEvent(opened, "breaker_resolved", r.reason, r.ticker))
        self._price_holdings(self.market.open, day)
        self.day_start_value = self.equity[-1][1] if self.equity else self.config.initial_capital
        self._exits(day, at_open=True)
        self._daily_loss(self.book.value(), opened)
        due = self.pending.pop(day, ())
        self._orders_changed()
        for order in due:
            self._submit(order, day)
        if self.config.rebalance_weekly and day in self.week_starts:
            self._rebalance(day)

    def _price_holdings(self, field: np.ndarray, day: int) -> None:
        for holding in self.book.holdings.values():
            value = field[holding.row, day]
            if not math.isnan(value):
                holding.price = to_decimal(value)
        self.book.repriced()

    def _breaker(self, check: circuit_breaker.BreakerCheck) -> None:
        if check.event is not None:
            self.breakers = check.state
            self._breaker_event(check.event)

    def _breaker_event(self, event: circuit_breaker.CircuitBreakerEvent) -> None:
        self.events.append(
            BacktestEvent(
                event.triggered_at, f"circuit_breaker:{event.trigger_type.value}", event.reason, event.ticker
            )
        )

    def _daily_loss(self, value: Decimal, at: datetime) -> None:
        # While a halt lasting to the next open is in force a new trip could not extend it:
        # it is not checked again, so one loss is one event (the live engine's rule).
        if not circuit_breaker.daily_loss_halt_in_force(self.breakers, at):
            self._breaker(
                circuit_breaker.check_daily_loss(
                    self.breakers, self.day_start_value, value, at, settings=self.settings.breakers
                )
            )

    def _rebalance(self, day: int) -> None:
        at = self.market.session_open[day] + WINDOW_BUFFER
        plan = rebalancer.evaluate(
            self.book.portfolio(),
            self.settings.tier,
            within_trading_window=is_within_trading_window(at),
            circuit_breaker_active=circuit_breaker.is_active(self.breakers, at),
            settings=self.settings.rebalance,
        )
        if plan.deferred:
            self.events.append(BacktestEvent(at, "rebalance_deferred", plan.deferred_reason or ""))
        for proposal in plan.proposals:
            holding = self.book.holdings.get(proposal.ticker)
            price = self.market.price(self.market.open, holding.row, day) if holding else None
            if holding is not None and price is not None:
                self._sell(holding, proposal.quantity, price, self.market.session_open[day], day, "rebalance")
                self.events.append(BacktestEvent(at, "rebalance", proposal.reason, proposal.ticker))

    def _rebalance_as_live(self, day: int, at: datetime) -> None:
        """The engine's weekly rebalance: at the week's first window, tried again at each
        instant while deferred; its trims are queued as exits (sized from filled shares)."""
        week = at.astimezone(NEW_YORK).isocalendar()[:2]
        if week == self.rebalanced_week:
            return
        plan = rebalancer.evaluate(
            self._decision_portfolio(day, pending_buys=False),
            self.settings.tier,
            within_trading_window=True,
            circuit_breaker_active=circuit_breaker.is_active(self.breakers, at),
            settings=self.settings.rebalance,
        )
        if plan.deferred:
            self.events.append(BacktestEvent(at, "rebalance_deferred", plan.deferred_reason or ""))
            return
        for proposal in plan.proposals:
            self._queue_exit(proposal.ticker, proposal.quantity, OrderReason.REBALANCE.value, False, at, day)
            self.events.append(BacktestEvent(at, "rebalance", proposal.reason, proposal.ticker))
        self.rebalanced_week = week

    def expire_pending(self) -> None:
        """Orders (later tranches, sells) the backtest ended before they were due."""
        at = self.market.session_close[self.last]
        for orders in self.pending.values():
            for order in orders:
                if order.decision_id not in self.cancelled:
                    self._cancel(order, at, "the backtest ended before the order was due")

    # -- decisions and orders ----------------------------------------------------------------

    def _decide(self, item: ScheduledRecommendation, day: int, now: datetime | None = None) -> None:
        """Decide one recommendation at `now` (its scheduled instant unless told)."""
        rec, now = item.rec, now or item.decide_at
        selling = str(rec.action) == SELL
        ctx = DecisionContext(
            self._decision_portfolio(day, pending_buys=not selling),
            self.breakers,
            self.settings,
            self.context.correlations(day),
            self.micro_today,
        )
        decision_id = uuid.UUID(
            int=DECISION_ID_BASE + len(self.decisions)
        )  # deterministic: the n-th decision
        outcome = decide(
            rec,
            self.context.view(rec, day, now),
            ctx,
            now=now,
            decision_id=decision_id,
            lazy_record=True,
        )  # the verdict is all a backtest keeps
        self.decisions.append(
            DecisionRecord(
                rec.id,
                rec.ticker,
                str(rec.action),
                now,
                outcome.acted,
                outcome.failed_check,
                outcome.skip_reason,
                outcome.share_quantity,
            )
        )
        if not outcome.acted:
            return
        # A micro-trade entry: what the daily limit counts (a micro-path sell opens nothing).
        is_micro = takes_micro_path(rec, self.settings) and not selling
        self.micro_today += is_micro
        stops = outcome.stops
        plan = (
            None
            if stops is None
            else StopPlan(
                stops.atr_value,
                stops.atr_multiplier,
                stops.reward_risk_ratio,
                Decimal(repr(float(rec.confidence))),
                is_micro,
            )
        )
        spacing = self.config.fill.tranche_spacing_sessions
        session = self.market.sessions[day]
        for intent in outcome.orders:
            order = PendingOrder(
                intent.ticker,
                intent.side,
                intent.quantity,
                decision_id,
                rec.id,
                intent.tranche_index,
                intent.tranche_count,
                plan,
                is_micro,
                intent.not_before,
                session,
            )
            if self.as_live:
                self._queue(order, now)
                continue
            offset = (intent.tranche_index - 1) * spacing if intent.tranche_count > 1 else 0
            due = item.fill_session + offset
            if due == day:
                self._submit(order, day)
            else:
                self.pending.setdefault(due, []).append(order)
                self._orders_changed()

    def _decision_portfolio(
        self, day: int, *, pending_buys: bool = True, without: uuid.UUID | None = None
    ) -> PortfolioState:
        """The account as a decision sees it: the book plus the orders decided and not yet
        filled (the core's `account_with_unfilled`, as the live engine counts its outbox), less the
        unsent orders of decision `without` (a tranche being re-checked, and those after it).

        Remembered until the book or the orders change (`_orders_changed`): a session's run of
        skipped recommendations all see the same account. The key holds the book's portfolio
        object itself, so it cannot be mistaken for a later one."""
        key = (day, pending_buys, without, self._orders_version)
        cached = self._seen_portfolio.get(key)
        book = self.book.portfolio()
        if cached is not None and cached[0] is book:
            return cached[1]
        seen = self._account_seen(day, pending_buys=pending_buys, without=without)
        if len(self._seen_portfolio) > 64:  # only the current day's few keys are ever read again
            self._seen_portfolio.clear()
        self._seen_portfolio[key] = (book, seen)
        return seen

    def _orders_changed(self) -> None:
        self._orders_version += 1

    def _account_seen(self, day: int, *, pending_buys: bool, without: uuid.UUID | None) -> PortfolioState:
        orders = [
            o
            for o in (self.queued if self.as_live else [o for due in self.pending.values() for o in due])
            if o.decision_id not in self.cancelled and o.decision_id != without
        ]
        portfolio = self.book.portfolio()
        if not orders:
            return portfolio
        prices = {p.ticker: p.current_price for p in portfolio.positions}
        for o in orders:
            if o.ticker not in prices and (price := self._price_now(o.ticker, day)) is not None:
                prices[o.ticker] = price
        sectors = self.market.sectors
        return account_with_unfilled(
            portfolio,
            [o.unfilled(sectors.get(o.ticker, "Unknown")) for o in orders],
            prices,
            pending_buys=pending_buys,
        )

    def _price_now(self, ticker: str, day: int) -> Decimal | None:
        row = self.market.index.get(ticker)
        return None if row is None else self.market.price(self.market.open, row, day)

    def _submit(self, order: PendingOrder, day: int, at: datetime | None = None) -> None:
        """Fill an order due now (`at`: the session's open unless told) at today's open."""
        if order.decision_id in self.cancelled:
            return
        at, trade_day = at or self.market.session_open[day], self.market.sessions[day]
        row = self.market.index[order.ticker]
        price = self.market.price(self.market.open, row, day)
        holding = self.book.holdings.get(order.ticker)
        if order.side is OrderSide.SELL:
            if holding is None:
                return
            if price is None:  # no bar today: the sell waits for the next one
                self.pending.setdefault(day + 1, []).append(order)
                self._orders_changed()
                return
            self._sell(holding, order.quantity, price, at, day, order.reason)
            return
        if order.tranche_index > 1:
            if holding is None or order.decision_id not in holding.decisions:
                return self._cancel(
                    order,
                    at,
                    f"position closed before tranche {order.tranche_index} of {order.tranche_count} was due",
                )
            verdict = self._tranche_check(order, day, at)
            if isinstance(verdict, tranche_check.Cut):
                detail = f"tranche {order.tranche_index} of {order.tranche_count}: {verdict.reason}"
                self.events.append(BacktestEvent(at, "tranche_cut", detail, order.ticker))
                order = replace(order, quantity=verdict.quantity)
            elif verdict is not None and verdict.reason is None and self.as_live:
                self.queued.append(order)  # not now: re-checked at the next instant
                self._orders_changed()
                return None
            elif verdict is not None:
                # Bar-range timing has no later moment in the session to wait for: not now is never.
                return self._cancel(order, at, verdict.reason or "the trading window was not open")
        if price is None:
            return self._cancel(order, at, f"no {order.ticker} bar on {trade_day}: the order cannot fill")
        assert order.plan is not None
        refused = self.book.buy(
            order.ticker,
            row,
            self.market.sectors[order.ticker],
            order.quantity,
            price,
            at,
            trade_day,
            order.plan,
            order.decision_id,
            order.recommendation_id,
        )
        if refused:
            return self._cancel(order, at, refused)
        self.opened_today.add(order.ticker)

    def _tranche_check(
        self, order: PendingOrder, day: int, at: datetime
    ) -> tranche_check.Refusal | tranche_check.Cut | None:
        """The core's re-check of a later tranche at this session's open. With bar-range
        timing it is checked as at the window's opening (a daily bar holds one price for the
        session) and its session is the bar it falls due on: daily bars space tranches a
        session apart where live spaces them 30 minutes apart in the decision's own session."""
        assert order.plan is not None
        live = self.as_live and order.session is not None
        now = at if self.as_live else self.market.session_open[day] + WINDOW_BUFFER
        tranche = tranche_check.DueTranche(
            order.ticker,
            order.quantity,
            order.tranche_index,
            order.tranche_count,
            order.session if live else self.market.sessions[day],
            order.plan.atr * order.plan.atr_multiplier,
            order.plan.confidence,
        )
        return tranche_check.check_tranche(
            tranche,
            self._decision_portfolio(day, without=order.decision_id),
            self.breakers,
            self.settings,
            self.context.ticker_view(order.ticker, day, now),
            self.context.correlations(day),
            now,
        )

    def _cancel(self, order: PendingOrder, at: datetime, reason: str) -> None:
        self.cancelled[order.decision_id] = reason
        self._orders_changed()
        kind = "tranche_cancelled" if order.tranche_index > 0 else "order_not_filled"
        self.events.append(
            BacktestEvent(
                at,
                kind,
                f"tranche {order.tranche_index} of {order.tranche_count}: {reason}"
                if order.tranche_index
                else reason,
                order.ticker,
            )
        )

    def _sell(
        self, holding: Holding, quantity: Decimal, price: Decimal, at: datetime, day: int, reason: str
    ) -> None:
        record = self.book.sell(holding.ticker, quantity, price, at, self.market.sessions[day], reason)
        self.recent.append(record.trade)
        if reason in STOP_OUTS:
            self.stop_outs.append(at)

    # -- exits ------------------------------------------------------------------------------

    def _exits(self, day: int, *, at_open: bool) -> None:
        at = self.market.session_open[day] if at_open else self.market.session_close[day]
        signals = find_exits(
            self.market,
            day,
            self.book.exit_levels(),
            self.breakers,
            at,
            self.settings.breakers,
            at_open=at_open,
            opened_today=self.opened_today,
        )
        stopped_out = False
        for signal in signals:
            if signal.breaker is not None:
                self._breaker(signal.breaker)
            self._sell(signal.holding, signal.holding.quantity, signal.fill.price, at, day, signal.reason)
            stopped_out |= signal.reason in STOP_OUTS
        if stopped_out:
            self._breaker(
                circuit_breaker.check_volatility(self.breakers, self.stop_outs, at, self.settings.breakers)
            )

    # -- the close --------------------------------------------------------------------------

    def _close(self, day: int) -> None:
        closed = self.market.session_close[day]
        value = self.book.value()
        self.equity.append((self.market.sessions[day], value))
        self.peak = max(self.peak, value)
        close_of_session.keep_for_judging(self.recent, closed, self.settings.tier_rules)
        figures = CloseFigures(
            value, performance_tracker.current_drawdown([self.peak, value]), self.book.reserve
        )
        outcome = close_of_session.close_session(
            figures, self.recent, self.settings.risk_tier, closed, self.settings, self.tier_memory
        )
        self.tier_memory = outcome.memory
        release = outcome.release
        if release.entry is not None:
            self.book.release_reserve(release.state, release.entry)
            self.events.append(BacktestEvent(closed, "emergency_release", release.reason))
        if outcome.tier_change is not None:
            self._set_tier(outcome.tier_change.new_tier, outcome.tier_change.reason, closed)

    def _set_tier(self, tier: RiskTierName, reason: str, at: datetime) -> None:
        if tier is not self.settings.risk_tier:
            self.events.append(
                BacktestEvent(at, "risk_tier", f"{self.settings.risk_tier.value} -> {tier.value}: {reason}")
            )
            self.settings = replace(self.settings, risk_tier=tier)

    def _maintain_stops(self, day: int, at: datetime) -> None:
        """The core's stop maintenance at the close, effective from the next bar: trailing on
        the bar's high; micro-trades past their hold close at the close."""
        held = list(self.book.holdings.values())
        if not held:
            return
        highs, markets = self._stop_facts(held, day, at)
        portfolio = self.book.portfolio()
        positions = [HeldPosition(p, h.levels) for p, h in zip(portfolio.positions, held)]
        upkeep = maintain_stops(
            positions,
            highs,
            markets,
            self.settings,
            at,
            high_severity_event=self.context.high_severity_event(at),
            total_value=portfolio.total_value,
            exiting=self._selling(),
        )
        for ticker, levels in upkeep.level_updates.items():
            self.book.set_levels(self.book.holdings[ticker], levels)
        for proposal in upkeep.micro_closes:
            holding = self.book.holdings[proposal.ticker]
            price = self.market.price(self.market.close, holding.row, day)
            if price is not None:  # no bar today: closed at the next close it has
                self._sell(holding, holding.quantity, price, at, day, proposal.order_reason.value)

    def _stop_facts(
        self, held: list[Holding], day: int, at: datetime
    ) -> tuple[dict[str, Decimal], dict[str, PositionMarket]]:
        """The bar's high per holding with a bar, and its ATR facts. The exact ATR (costly) is
        read only when the float estimate moved near the threshold or the multiplier changed:
        otherwise re-evaluation could not be due; a micro-trade's is never read (its stop is
        not re-evaluated)."""
        market, stops = self.market, self.settings.stops
        trigger = float(stops.atr_change_threshold) * ATR_TRIGGER_MARGIN
        base = self.settings.tier.stop_loss_atr_multiplier
        high_severity = self.context.high_severity_event(at)
        earnings = self.context.earnings  # none given: no holding has earnings soon
        # The multiplier depends on the holding only through earnings_soon: two values at most.
        multipliers = {
            soon: stop_loss_manager.effective_atr_multiplier(
                base, earnings_soon=soon, high_severity_event=high_severity, settings=stops
            )
            for soon in (False, True)
        }
        highs: dict[str, Decimal] = {}
        markets: dict[str, PositionMarket] = {}
        high_of = market.high
        for holding in held:
            high = high_of[holding.row, day]
            if math.isnan(high):
                continue
            highs[holding.ticker] = to_decimal(high)
            if holding.is_micro_trade:
                continue
            earnings_soon = bool(earnings) and self.context.earnings_soon(holding.ticker, at, self.settings)
            multiplier = multipliers[earnings_soon]
            estimate = market.atr_estimate(holding.row, day)
            stored = float(holding.levels.atr_value)
            due = (
                multiplier != holding.levels.atr_multiplier
                or math.isnan(estimate)
                or abs(estimate - stored) > trigger * stored
            )
            if due or earnings_soon:
                markets[holding.ticker] = PositionMarket(
                    market.atr(holding.row, day) if due else None, earnings_soon
                )
        return highs, markets

    def _selling(self) -> frozenset[str]:
        """Tickers with a sell order on its way (due at a later open)."""
        return frozenset(
            o.ticker
            for orders in self.pending.values()
            for o in orders
            if o.side is OrderSide.SELL and o.decision_id not in self.cancelled
        )
