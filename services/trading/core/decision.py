"""Act or skip: one recommendation through every pre-trade check (seed task 13.1).

This is the one decision path. The live engine, the demo replay and the backtester all call
`decide`, and micro-trades pass through it too, so a rule changed in the decision core
changes every one of them. It is pure: the engine gathers the inputs (portfolio, breakers,
market view, settings) and persists what comes out.

The outcome is a `TradingDecision` whose trace records each check in order with its inputs
and result, the sizing arithmetic step by step, and the orders to send. Bad upstream data
(NaN or out-of-range confidence, a ticker that is no symbol or unknown, no price, not enough
bars) is a skip with a reason, never an exception, and so is a buy on a price too old to trust.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property, partial
from typing import Any, Protocol
from uuid import UUID

from services.shared.schemas import (
    OrderReason,
    OrderSide,
    RecommendationAction,
    TradingDecisionType,
    TrendWindow,
)
from services.trading.core import (
    circuit_breaker,
    entry_guards,
    gradual_entry,
    micro_trading,
    price_age,
    stop_loss_manager,
    upstream_fields,
)
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import (
    ZERO,
    CircuitBreakerState,
    PortfolioState,
    PositionSizeResult,
    Recommendation,
    StopLevels,
    TradingDecision,
)
from services.trading.core.position_sizer import (
    CorrelationSource,
    PositionSizer,
    SizingRequest,
    active_pool_gate,
    below_min_confidence,
)
from services.trading.core.trading_window import (
    NEW_YORK,
    WINDOW_BUFFER,
    calendar_cache,
    is_within_trading_window,
    next_window_open,
    session_times,
)

ERROR_SHOWN_MAX = 500  # an error is kept this far in a skip's reason
MICRO_WINDOWS = frozenset({TrendWindow.INTRADAY.value, TrendWindow.ONE_DAY.value})
# The actions' text once: an enum member's `.value` is a descriptor call, and every decision reads it.
BUY, SELL = RecommendationAction.BUY.value, RecommendationAction.SELL.value


class MarketFacts(Protocol):
    """What `decide` reads about the recommendation's ticker at the decision instant.
    `MarketView` is the plain value; the backtester's view computes its ATR only when read
    (backtest/context.py), since most recommendations are decided without it."""

    @property
    def ticker_known(self) -> bool: ...
    @property
    def sector(self) -> str: ...
    @property
    def price(self) -> Decimal | None: ...
    @property
    def price_as_of(self) -> datetime | None: ...
    @property
    def price_interval(self) -> str: ...
    @property
    def daily_atr(self) -> Decimal | None: ...
    @property
    def intraday_atr(self) -> Decimal | None: ...
    @property
    def sessions_until_earnings(self) -> int | None: ...
    @property
    def high_severity_event(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the engine knows about the recommendation's ticker at the decision instant.
    `price_as_of` is when the price's bar (of `price_interval`) became known: without it the
    price's age is unknown, and no buy is made on it."""

    ticker_known: bool
    sector: str = "Unknown"
    price: Decimal | None = None
    daily_atr: Decimal | None = None
    intraday_atr: Decimal | None = None
    sessions_until_earnings: int | None = None
    high_severity_event: bool = False
    price_as_of: datetime | None = None
    price_interval: str = price_age.DAILY


@dataclass(frozen=True, slots=True)
class DecisionContext:
    portfolio: PortfolioState
    breakers: CircuitBreakerState
    settings: EngineSettings
    correlations: CorrelationSource
    micro_trades_today: int = 0


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One order to send: `not_before` delays later tranches of a gradual entry."""

    ticker: str
    side: OrderSide
    quantity: Decimal
    reason: OrderReason
    not_before: datetime
    tranche_index: int = 0
    tranche_count: int = 1


@dataclass(frozen=True)
class DecisionOutcome:
    """The verdict (act, or skip with the reason and the check that refused), the orders and
    stop it brings, and `decision`: the full record with its trace, as persisted."""

    skip_reason: str | None
    orders: tuple[OrderIntent, ...]
    stops: StopLevels | None
    share_quantity: Decimal
    failed_check: str | None
    # The record, or (decide's `lazy_record`) how to build it when first read.
    _record: TradingDecision | Callable[[], TradingDecision] = field(repr=False, compare=False)

    @classmethod
    def of(cls, decision: TradingDecision, orders: tuple[OrderIntent, ...] = ()) -> DecisionOutcome:
        failed = next((s["check"] for s in decision.decision_trace["checks"] if not s["passed"]), None)
        return cls(decision.skip_reason, orders, None, decision.computed_share_quantity, failed, decision)

    @property
    def acted(self) -> bool:
        return self.skip_reason is None

    @cached_property
    def decision(self) -> TradingDecision:
        return self._record() if callable(self._record) else self._record


class _Trace:
    """The reasoning chain being built: each check with its result and detail."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.failed_check: str | None = None  # the check that refused (a decision stops at it)

    def passed(self, check: str, detail: str, **inputs: Any) -> None:
        self.steps.append({"check": check, "passed": True, "detail": detail, "inputs": inputs})

    def failed(self, check: str, detail: str, **inputs: Any) -> str:
        self.steps.append({"check": check, "passed": False, "detail": detail, "inputs": inputs})
        self.failed_check = self.failed_check or check
        return detail


def _sizing_trace(size: PositionSizeResult | None) -> dict[str, Any]:
    if size is None:
        return {}
    return {
        "dollar_amount": size.dollar_amount,
        "share_quantity": size.share_quantity,
        "allocation_pct": size.allocation_pct,
        "rejected": size.rejected,
        "rejection_reason": size.rejection_reason,
        "adjustments": [{"name": a.name, "factor": a.factor, "reason": a.reason} for a in size.adjustments],
    }


@calendar_cache  # many recommendations share a stamp (a session's close)
def recommendation_expiry(generated_at: datetime) -> datetime:
    """A recommendation is actionable until the end of the first trading window that opens
    after it was generated; after that the market it described has moved on."""
    window_open = generated_at if is_within_trading_window(generated_at) else next_window_open(generated_at)
    _, close = session_times(window_open.astimezone(NEW_YORK).date())
    return close - WINDOW_BUFFER


def _input_problem(
    rec: Recommendation, market: MarketFacts, now: datetime, settings: EngineSettings, trace: _Trace
) -> str | None:
    """Upstream data the engine cannot act on (docs/contracts.md section 3), and a price too old to buy on."""
    problem = upstream_fields.field_problem(rec)
    if problem is not None:
        return trace.failed(problem.check, problem.detail)
    action = str(rec.action)
    if not market.ticker_known:
        return trace.failed("ticker", f"ticker {rec.ticker!r} is unknown (not in tickers)")
    expiry = recommendation_expiry(rec.generated_at)
    if now >= expiry:
        return trace.failed(
            "freshness",
            f"stale: generated {rec.generated_at.isoformat()}, its first trading "
            f"window ended {expiry.isoformat()}",
            expires=expiry,
        )
    if market.price is None or market.price <= 0:
        return trace.failed("price", f"no market price for {rec.ticker}")
    if action == BUY:
        # The age beyond which the missing-price rule would close the position just bought.
        stale = price_age.stale_price_reason(
            rec.ticker, market.price_as_of, market.price_interval, now, settings.stops.price_stale_after
        )
        if stale is not None:
            return trace.failed("price_age", stale, price=market.price, price_as_of=market.price_as_of)
    trace.passed(
        "input",
        f"{action} {rec.ticker} at confidence {rec.confidence}, price {market.price}",
        action=action,
        confidence=rec.confidence,
        price=market.price,
        price_as_of=market.price_as_of,
    )
    return None


def _stop_levels(
    market: MarketFacts, multiplier: Decimal, reward_risk: Decimal, now: datetime, trace: _Trace
) -> StopLevels | str:
    if market.daily_atr is None or market.daily_atr <= 0:
        return trace.failed("atr", "ATR(14) unavailable for the ticker: fewer than 15 daily bars")
    try:
        levels = stop_loss_manager.compute_initial_levels(
            market.price, market.daily_atr, multiplier, reward_risk, now
        )
    except ValueError as exc:
        return trace.failed("stops", f"no valid stop: {exc}")
    trace.passed(
        "stops",
        f"stop {levels.stop_loss_price:.4f}, take-profit {levels.take_profit_price:.4f} "
        f"({multiplier}x ATR {market.daily_atr:.4f}, reward/risk {reward_risk})",
        atr=market.daily_atr,
        multiplier=multiplier,
    )
    return levels


def _buy(
    rec: Recommendation,
    market: MarketFacts,
    ctx: DecisionContext,
    now: datetime,
    decision_id: UUID,
    trace: _Trace,
) -> tuple[str | None, PositionSizeResult | None, StopLevels | None, tuple[OrderIntent, ...]]:
    settings, tier = ctx.settings, ctx.settings.tier
    blocked = active_pool_gate(OrderSide.BUY, ctx.portfolio.active_pool, settings.sizing)
    if blocked:
        return trace.failed("active_pool", blocked), None, None, ()
    blocked = below_min_confidence(rec.confidence, tier)
    if blocked:
        return trace.failed("min_confidence", blocked), None, None, ()
    trace.passed(
        "min_confidence",
        f"confidence {rec.confidence} meets the {tier.name} tier's minimum {tier.min_confidence}",
    )
    checks: list[str] = []
    blocked = entry_guards.new_entry_block_reason(
        rec.ticker,
        ctx.portfolio.positions,
        ctx.breakers,
        now,
        max_open_positions=settings.max_open_positions,
        checks=checks,
    )
    for check in checks:
        trace.passed("entry_gate", check)
    blocked = blocked or micro_trading.mixed_position_reason(rec.ticker, ctx.portfolio.positions, micro=False)
    if blocked:
        return trace.failed("entry_gate", blocked), None, None, ()
    earnings_soon = (
        market.sessions_until_earnings is not None
        and market.sessions_until_earnings <= settings.sizing.earnings_reduce_within_sessions
    )
    multiplier = stop_loss_manager.effective_atr_multiplier(
        tier.stop_loss_atr_multiplier,
        earnings_soon=earnings_soon,
        high_severity_event=market.high_severity_event,
        settings=settings.stops,
    )
    stops = _stop_levels(market, multiplier, tier.reward_risk_ratio, now, trace)
    if isinstance(stops, str):
        return stops, None, None, ()
    request = SizingRequest(
        rec.ticker,
        market.sector,
        rec.confidence,
        market.price,
        market.price - stops.stop_loss_price,
        market.sessions_until_earnings,
    )
    size = PositionSizer(ctx.correlations, settings.sizing).compute(request, ctx.portfolio, tier)
    if size.rejected:
        return trace.failed("sizing", size.rejection_reason or "sizer rejected the entry"), size, None, ()
    trace.passed(
        "sizing",
        f"{size.share_quantity} shares, ${size.dollar_amount:.2f} "
        f"({size.allocation_pct:.2%} of the Active Pool)",
    )
    plan = gradual_entry.plan_entry(
        str(decision_id),
        rec.ticker,
        size.share_quantity,
        market.price,
        ctx.portfolio.active_pool,
        now,
        settings.gradual,
        settings.sizing.share_step,
    )
    orders = tuple(
        OrderIntent(
            rec.ticker,
            OrderSide.BUY,
            t.quantity,
            OrderReason.ENTRY,
            t.scheduled_at,
            t.index if t.count > 1 else 0,
            t.count,
        )
        for t in plan.tranches
    )
    if len(orders) > 1:
        trace.passed(
            "gradual_entry", f"split into {len(orders)} tranches {settings.gradual.tranche_spacing} apart"
        )
    return None, size, stops, orders


def _micro_buy(
    rec: Recommendation, market: MarketFacts, ctx: DecisionContext, now: datetime, trace: _Trace
) -> tuple[str | None, PositionSizeResult | None, StopLevels | None, tuple[OrderIntent, ...]]:
    request = micro_trading.MicroTradeRequest(
        rec.ticker,
        market.sector,
        rec.confidence,
        market.price,
        market.intraday_atr or ZERO,
        rec.trend_window,
        market.sessions_until_earnings,
        market.high_severity_event,
    )
    result = micro_trading.evaluate_micro_trade(
        request,
        portfolio=ctx.portfolio,
        tier=ctx.settings.tier,
        sizer=PositionSizer(ctx.correlations, ctx.settings.sizing),
        breakers=ctx.breakers,
        micro_trades_today=ctx.micro_trades_today,
        now=now,
        settings=ctx.settings.micro,
        stops=ctx.settings.stops,
    )
    for check in result.checks:
        trace.passed("micro_gate", check)
    if not result.approved:
        return trace.failed("micro_trade", result.reason), result.size, None, ()
    trace.passed("micro_trade", result.reason)
    order = OrderIntent(rec.ticker, OrderSide.BUY, result.quantity, OrderReason.ENTRY, now)
    return None, result.size, result.stops, (order,)


def _sell(
    rec: Recommendation, ctx: DecisionContext, now: datetime, trace: _Trace
) -> tuple[str | None, None, None, tuple[OrderIntent, ...]]:
    held = ctx.portfolio.position(rec.ticker)
    if held is None or held.quantity <= 0:
        return (
            trace.failed("position", f"{rec.ticker} is not held: the engine does not sell short"),
            None,
            None,
            (),
        )
    # Exits are never blocked by breakers, the Active Pool minimum or position guards:
    # they reduce risk. Only the trading window applies.
    if not is_within_trading_window(now):
        return (
            trace.failed("trading_window", f"{now.isoformat()} is outside the trading window"),
            None,
            None,
            (),
        )
    trace.passed("position", f"selling all {held.quantity} {rec.ticker} held", held=held.quantity)
    return (
        None,
        None,
        None,
        (OrderIntent(rec.ticker, OrderSide.SELL, held.quantity, OrderReason.SIGNAL, now),),
    )


def takes_micro_path(rec: Recommendation, settings: EngineSettings) -> bool:
    """An intraday or 1-day signal is a micro-trade candidate while micro-trading is on."""
    return settings.micro.enabled and str(rec.trend_window) in MICRO_WINDOWS


def decide(
    rec: Recommendation,
    market: MarketFacts,
    ctx: DecisionContext,
    *,
    now: datetime,
    decision_id: UUID,
    lazy_record: bool = False,
) -> DecisionOutcome:
    """Decide one recommendation. Never raises on bad data: that is a skip with a reason.

    With `lazy_record` the outcome's full record is built only if read: the backtester keeps
    the verdict alone, and building ~9,000 unread records a decade cost ~5% of its run."""
    trace = _Trace()
    settings = ctx.settings
    is_micro = takes_micro_path(rec, settings)
    reason: str | None = _input_problem(rec, market, now, settings, trace)
    size = stops = None
    orders: tuple[OrderIntent, ...] = ()
    if reason is None and not settings.enabled:
        reason = trace.failed("engine", "the engine is disabled")
    if reason is None and settings.paused:
        reason = trace.failed("engine", "the engine is paused")
    if reason is None:
        if str(rec.action) == SELL:
            reason, size, stops, orders = _sell(rec, ctx, now, trace)
        elif is_micro:
            reason, size, stops, orders = _micro_buy(rec, market, ctx, now, trace)
        else:
            reason, size, stops, orders = _buy(rec, market, ctx, now, decision_id, trace)
    acted = reason is None
    quantity = sum((o.quantity for o in orders), ZERO) if acted else (size.share_quantity if size else ZERO)
    record = partial(
        _record,
        rec,
        market,
        ctx,
        now,
        decision_id,
        trace,
        reason,
        size,
        orders if acted else (),
        quantity,
        is_micro,
    )
    return DecisionOutcome(
        reason,
        orders if acted else (),
        stops if acted else None,
        quantity,
        trace.failed_check,
        record if lazy_record else record(),
    )


def _record(
    rec: Recommendation,
    market: MarketFacts,
    ctx: DecisionContext,
    now: datetime,
    decision_id: UUID,
    trace: _Trace,
    reason: str | None,
    size: PositionSizeResult | None,
    orders: tuple[OrderIntent, ...],
    quantity: Decimal,
    is_micro: bool,
) -> TradingDecision:
    portfolio = ctx.portfolio
    adjustments = {a.name: a for a in size.adjustments} if size else {}
    correlation = adjustments.get("correlation")
    sector = adjustments.get("sector_cap")
    acted = reason is None
    side = OrderSide.SELL if str(rec.action) == RecommendationAction.SELL.value else OrderSide.BUY
    return TradingDecision(
        id=decision_id,
        recommendation_id=rec.id,
        ticker=upstream_fields.recorded_ticker(rec.ticker),
        decision=TradingDecisionType.ACT if acted else TradingDecisionType.SKIP,
        side=side.value,
        skip_reason=reason,
        computed_position_size=(size.dollar_amount if size else (quantity * (market.price or ZERO))),
        computed_share_quantity=quantity,
        risk_tier_at_decision=ctx.settings.risk_tier,
        portfolio_heat_at_decision=portfolio.portfolio_heat,
        active_pool_at_decision=portfolio.active_pool,
        reserve_pool_at_decision=portfolio.reserve_pool,
        circuit_breaker_status=("active" if circuit_breaker.is_active(ctx.breakers, now) else "inactive"),
        correlation_check_result=(
            {"factor": correlation.factor, "reason": correlation.reason} if correlation else {}
        ),
        sector_exposure_check_result=(
            {"sector": market.sector, "factor": sector.factor, "reason": sector.reason}
            if sector
            else {"sector": market.sector}
        ),
        earnings_proximity_flag=market.sessions_until_earnings is not None
        and market.sessions_until_earnings <= ctx.settings.sizing.earnings_reduce_within_sessions,
        is_micro_trade=is_micro,
        decision_trace={
            "recommendation": upstream_fields.trace_fields(rec),
            "risk_tier": ctx.settings.risk_tier.value,
            "checks": trace.steps,
            "sizing": _sizing_trace(size),
            "orders": [
                {
                    "side": o.side.value,
                    "quantity": o.quantity,
                    "tranche": o.tranche_index,
                    "of": o.tranche_count,
                    "not_before": o.not_before,
                }
                for o in orders
            ],
        },
        created_at=now,
    )


def exit_decision(
    ticker: str,
    quantity: Decimal,
    reason: OrderReason,
    detail: str,
    ctx: DecisionContext,
    *,
    now: datetime,
    decision_id: UUID,
    price: Decimal | None = None,
    is_micro: bool = False,
    inputs: dict[str, Any] | None = None,
) -> DecisionOutcome:
    """A sell the engine's own rules ordered (stop, take-profit, trailing stop, breaker,
    rebalance, micro exit, emergency): recorded like any decision, with the rule's reason."""
    trace = _Trace()
    trace.passed(reason.value, detail, **(inputs or {}))
    portfolio = ctx.portfolio
    order = OrderIntent(ticker, OrderSide.SELL, quantity, reason, now)
    decision = TradingDecision(
        id=decision_id,
        recommendation_id=None,
        ticker=ticker,
        decision=TradingDecisionType.ACT,
        side=OrderSide.SELL.value,
        skip_reason=None,
        computed_position_size=quantity * (price or ZERO),
        computed_share_quantity=quantity,
        risk_tier_at_decision=ctx.settings.risk_tier,
        portfolio_heat_at_decision=portfolio.portfolio_heat,
        active_pool_at_decision=portfolio.active_pool,
        reserve_pool_at_decision=portfolio.reserve_pool,
        circuit_breaker_status="active" if circuit_breaker.is_active(ctx.breakers, now) else "inactive",
        correlation_check_result={},
        sector_exposure_check_result={},
        earnings_proximity_flag=False,
        is_micro_trade=is_micro,
        decision_trace={
            "exit": {"reason": reason.value, "detail": detail},
            "risk_tier": ctx.settings.risk_tier.value,
            "checks": trace.steps,
            "orders": [{"side": "sell", "quantity": quantity, "tranche": 0, "of": 1, "not_before": now}],
        },
        created_at=now,
    )
    return DecisionOutcome.of(decision, (order,))


def failed_decision(
    rec: Recommendation,
    market: MarketFacts,
    ctx: DecisionContext,
    *,
    now: datetime,
    decision_id: UUID,
    error: str,
) -> DecisionOutcome:
    """A skip for a recommendation the core could not decide (a defect, not a market fact):
    recorded once with the error, so it can never wedge the loop by failing every tick."""
    return _skip(rec, market, ctx, now, decision_id, "internal_error", f"could not be decided: {error}")


def unrecordable_decision(
    rec: Recommendation,
    market: MarketFacts,
    ctx: DecisionContext,
    *,
    now: datetime,
    decision_id: UUID,
    error: str,
) -> DecisionOutcome:
    """A skip for a recommendation whose decision PostgreSQL or the order job refused to store
    (issue 12): what was decided cannot be sent, and a skip saying why lets the loop move on
    instead of writing the same refused row every tick."""
    return _skip(rec, market, ctx, now, decision_id, "record", f"the decision could not be recorded: {error}")


def _skip(
    rec: Recommendation,
    market: MarketFacts,
    ctx: DecisionContext,
    now: datetime,
    decision_id: UUID,
    check: str,
    detail: str,
) -> DecisionOutcome:
    trace = _Trace()
    reason = trace.failed(check, upstream_fields.excerpt(detail, ERROR_SHOWN_MAX))
    return DecisionOutcome.of(
        _record(rec, market, ctx, now, decision_id, trace, reason, None, (), ZERO, False)
    )
