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
from datetime import datetime
from decimal import Decimal

import numpy as np

from services.shared.schemas import OrderSide, RecommendationAction, RiskTierName
from services.trading.backtest.book import Book, Holding, StopPlan
from services.trading.backtest.config import BacktestConfig
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
from services.trading.core.close_of_session import WIN_RATE_WINDOW, CloseFigures
from services.trading.core.decision import DecisionContext, decide, takes_micro_path
from services.trading.core.models import CircuitBreakerState, ClosedTrade, HeldPosition
from services.trading.core.protection import PositionMarket, maintain_stops
from services.trading.core.trading_window import WINDOW_BUFFER, is_within_trading_window

DECISION_ID_BASE = 0xB4C7 << 112  # decision ids of a backtest: this prefix + a sequence number
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
        self.peak = self.day_start_value = config.initial_capital
        self.opened_today: set[str] = set()
        self.micro_today = 0  # micro-trade entries decided this session: the daily limit counts them
        self.day: int | None = None  # the session being simulated (where a failure happened)
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
            self._open(day)
            for item in self.schedule.get(day, ()):
                self._decide(item, day)
            self._exits(day, at_open=False)
            self._close(day)
            if self.progress is not None and (n % step == 0 or n == sessions):
                self.progress(n / sessions)

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
        for order in self.pending.pop(day, ()):
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
            event = check.event
            self.events.append(
                BacktestEvent(
                    event.triggered_at,
                    f"circuit_breaker:{event.trigger_type.value}",
                    event.reason,
                    event.ticker,
                )
            )

    def _daily_loss(self, value: Decimal, at: datetime) -> None:
        # While a halt is in force a new trip could not extend it (both end at the next open):
        # it is not checked again, so one loss is one event.
        if not circuit_breaker.is_active(self.breakers, at):
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

    def expire_pending(self) -> None:
        """Orders (later tranches, sells) the backtest ended before they were due."""
        at = self.market.session_close[self.last]
        for orders in self.pending.values():
            for order in orders:
                if order.decision_id not in self.cancelled:
                    self._cancel(order, at, "the backtest ended before the order was due")

    # -- decisions and orders ----------------------------------------------------------------

    def _decide(self, item: ScheduledRecommendation, day: int) -> None:
        rec = item.rec
        ctx = DecisionContext(
            self.book.portfolio(),
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
            self.context.view(rec, day, item.decide_at),
            ctx,
            now=item.decide_at,
            decision_id=decision_id,
            lazy_record=True,
        )  # the verdict is all a backtest keeps
        self.decisions.append(
            DecisionRecord(
                rec.id,
                rec.ticker,
                str(rec.action),
                item.decide_at,
                outcome.acted,
                outcome.failed_check,
                outcome.skip_reason,
                outcome.share_quantity,
            )
        )
        if not outcome.acted:
            return
        # A micro-trade entry: what the daily limit counts (a micro-path sell opens nothing).
        is_micro = takes_micro_path(rec, self.settings) and str(rec.action) != RecommendationAction.SELL.value
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
            )
        )
        spacing = self.config.fill.tranche_spacing_sessions
        for intent in outcome.orders:
            offset = (intent.tranche_index - 1) * spacing if intent.tranche_count > 1 else 0
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
            )
            due = item.fill_session + offset
            if due == day:
                self._submit(order, day)
            else:
                self.pending.setdefault(due, []).append(order)

    def _submit(self, order: PendingOrder, day: int) -> None:
        if order.decision_id in self.cancelled:
            return
        at, trade_day = self.market.session_open[day], self.market.sessions[day]
        row = self.market.index[order.ticker]
        price = self.market.price(self.market.open, row, day)
        holding = self.book.holdings.get(order.ticker)
        if order.side is OrderSide.SELL:
            if holding is None:
                return
            if price is None:  # no bar today: the sell waits for the next one
                self.pending.setdefault(day + 1, []).append(order)
                return
            self._sell(holding, order.quantity, price, at, day, "sell_recommendation")
            return
        if order.tranche_index > 1:
            if holding is None or order.decision_id not in holding.decisions:
                return self._cancel(
                    order,
                    at,
                    f"position closed before tranche {order.tranche_index} of {order.tranche_count} was due",
                )
            verdict = self._tranche_check(order, day)
            if isinstance(verdict, tranche_check.Cut):
                detail = f"tranche {order.tranche_index} of {order.tranche_count}: {verdict.reason}"
                self.events.append(BacktestEvent(at, "tranche_cut", detail, order.ticker))
                order = replace(order, quantity=verdict.quantity)
            elif verdict is not None:
                # A backtest has no later moment in the session to wait for: not now is never.
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
        if order.is_micro:
            self.book.mark_micro(order.ticker)
        self.opened_today.add(order.ticker)

    def _tranche_check(
        self, order: PendingOrder, day: int
    ) -> tranche_check.Refusal | tranche_check.Cut | None:
        """The core's re-check of a later tranche, at this session's open, checked as at the
        window's opening (a daily bar holds one price for the session). Its session is the bar
        it falls due on: daily bars space tranches a session apart where live spaces them 30
        minutes apart in the decision's own session."""
        assert order.plan is not None
        now = self.market.session_open[day] + WINDOW_BUFFER
        tranche = tranche_check.DueTranche(
            order.ticker,
            order.quantity,
            order.tranche_index,
            order.tranche_count,
            self.market.sessions[day],
            order.plan.atr * order.plan.atr_multiplier,
            order.plan.confidence,
        )
        return tranche_check.check_tranche(
            tranche,
            self.book.portfolio(),
            self.breakers,
            self.settings,
            self.context.ticker_view(order.ticker, day, now),
            self.context.correlations(day),
            now,
        )

    def _cancel(self, order: PendingOrder, at: datetime, reason: str) -> None:
        self.cancelled[order.decision_id] = reason
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

    # -- exits ------------------------------------------------------------------------------

    def _exits(self, day: int, *, at_open: bool) -> None:
        held, rows, stops, take_profits, entries = self.book.arrays()
        at = self.market.session_open[day] if at_open else self.market.session_close[day]
        signals = find_exits(
            self.market,
            day,
            held,
            rows,
            stops,
            take_profits,
            entries,
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
            if signal.reason in STOP_OUTS:
                self.stop_outs.append(at)
                stopped_out = True
        if stopped_out:
            self._breaker(
                circuit_breaker.check_volatility(self.breakers, self.stop_outs, at, self.settings.breakers)
            )

    # -- the close --------------------------------------------------------------------------

    def _close(self, day: int) -> None:
        closed = self.market.session_close[day]
        self._price_holdings(self.market.close, day)
        self._maintain_stops(day, closed)
        value = self.book.value()
        self.equity.append((self.market.sessions[day], value))
        self.peak = max(self.peak, value)
        self._daily_loss(value, closed)
        while self.recent and closed - self.recent[0].exit_at > WIN_RATE_WINDOW:
            self.recent.popleft()
        figures = CloseFigures(
            value, performance_tracker.current_drawdown([self.peak, value]), self.book.reserve
        )
        outcome = close_of_session.close_session(
            figures, self.recent, self.settings.risk_tier, closed, self.settings
        )
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
        held, rows, *_ = self.book.arrays()
        if not held:
            return
        highs, markets = self._stop_facts(held, rows, day, at)
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
        self, held: list[Holding], rows: np.ndarray, day: int, at: datetime
    ) -> tuple[dict[str, Decimal], dict[str, PositionMarket]]:
        """The bar's high per holding with a bar, and its ATR facts. The exact ATR (costly) is
        read only when the float estimate moved near the threshold or the multiplier changed:
        otherwise re-evaluation could not be due; a micro-trade's is never read (its stop is
        not re-evaluated)."""
        market, stops = self.market, self.settings.stops
        estimates = market.atr_estimates(rows, day).tolist()
        trigger = float(stops.atr_change_threshold) * ATR_TRIGGER_MARGIN
        base = self.settings.tier.stop_loss_atr_multiplier
        high_severity = self.context.high_severity_event(at)
        earnings = self.context.earnings  # none given: no holding has earnings soon
        highs: dict[str, Decimal] = {}
        markets: dict[str, PositionMarket] = {}
        for holding, estimate in zip(held, estimates):
            high = market.high[holding.row, day]
            if math.isnan(high):
                continue
            highs[holding.ticker] = to_decimal(high)
            if holding.is_micro_trade:
                continue
            earnings_soon = bool(earnings) and self.context.earnings_soon(holding.ticker, at, self.settings)
            multiplier = stop_loss_manager.effective_atr_multiplier(
                base, earnings_soon=earnings_soon, high_severity_event=high_severity, settings=stops
            )
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
