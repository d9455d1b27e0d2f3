"""Micro-trading: short intraday trades under the same rules as any other (seed task 17.1,
requirements 20.1-20.10, docs/contracts.md section 5).

A micro-trade is a normal entry with four extra limits: it must be switched on
(`micro_trading_enabled`, off by default) and come from an intraday or 1d signal; at most
`max_daily` (10) are opened per session day; its size is capped at `allocation_cap_pct` (3%)
of the Active Pool; its stop is 1.0x the intraday ATR (tightened further for earnings or a
high-severity event exactly as other stops are) with take-profit at 1.5x the stop distance.
A micro position held for `max_hold` (120 min) or longer is closed at market.

Everything else is the decision core itself, called, never copied: the trading window
(`trading_window`), circuit breakers and ticker cooldowns (`circuit_breaker`), the declining-
positions and open-position guards (`entry_guards`), and the sizer (`position_sizer`:
confidence, Active Pool minimum, earnings, correlation, sector, portfolio heat, whole
shares). The cap is applied by handing the sizer a tier whose `max_position_pct` is the
smaller of the tier's and the micro cap, so every later sizing step sees the capped amount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from services.shared.schemas import OrderReason, TrendWindow
from services.trading.core import entry_guards, stop_loss_manager, trading_window
from services.trading.core.models import (
    CircuitBreakerState,
    OpenPosition,
    PortfolioState,
    PositionSizeResult,
    RiskTierConfig,
    StopLevels,
)
from services.trading.core.position_sizer import PositionSizer, SizingRequest
from services.trading.core.stop_loss_manager import StopSettings

MICRO_TREND_WINDOWS = frozenset({TrendWindow.INTRADAY, TrendWindow.ONE_DAY})


@dataclass(frozen=True, slots=True)
class MicroTradingSettings:
    """docs/contracts.md section 5 defaults (`micro_trading_*` in the engine config)."""

    enabled: bool = False
    allocation_cap_pct: Decimal = Decimal("0.03")
    max_daily: int = 10
    max_hold: timedelta = timedelta(minutes=120)
    stop_atr_multiplier: Decimal = Decimal("1.0")
    take_profit_ratio: Decimal = Decimal("1.5")
    max_open_positions: int = 10


@dataclass(frozen=True, slots=True)
class MicroTradeRequest:
    """One intraday buy signal. `intraday_atr` is ATR(14) of intraday bars (e.g. 5m);
    `sessions_until_earnings` as from `trading_window.sessions_until`."""

    ticker: str
    sector: str
    confidence: Decimal | float
    current_price: Decimal
    intraday_atr: Decimal
    trend_window: TrendWindow | str
    sessions_until_earnings: int | None = None
    high_severity_event: bool = False


@dataclass(frozen=True, slots=True)
class MicroTradeDecision:
    """Act (with size and stops) or skip (with the reason). `checks` lists the gates passed,
    in order, for the decision trace."""

    approved: bool
    reason: str
    checks: tuple[str, ...] = ()
    size: PositionSizeResult | None = None
    stops: StopLevels | None = None

    @property
    def quantity(self) -> Decimal:
        return self.size.share_quantity if self.size and self.approved else Decimal(0)


@dataclass(frozen=True, slots=True)
class MicroExitProposal:
    """Close a micro position at market: it reached its maximum hold."""

    ticker: str
    quantity: Decimal
    reference_price: Decimal
    reason: str
    order_reason: OrderReason = OrderReason.MICRO_EXIT


def micro_stop_multiplier(
    request: MicroTradeRequest,
    settings: MicroTradingSettings,
    *,
    earnings_within_sessions: int,
    stops: StopSettings | None = None,
) -> Decimal:
    """1.0x intraday ATR, tightened by the stop manager's own earnings/event rule. "Earnings
    soon" is the configured earnings window (`earnings_reduce_sessions`), as for a standard
    entry: one setting, one meaning."""
    earnings_soon = (
        request.sessions_until_earnings is not None
        and request.sessions_until_earnings <= earnings_within_sessions
    )
    return stop_loss_manager.effective_atr_multiplier(
        settings.stop_atr_multiplier,
        earnings_soon=earnings_soon,
        high_severity_event=request.high_severity_event,
        settings=stops,
    )


def _skip(reason: str, checks: list[str], size: PositionSizeResult | None = None) -> MicroTradeDecision:
    return MicroTradeDecision(False, reason, tuple(checks), size)


def _micro_gates(
    request: MicroTradeRequest, settings: MicroTradingSettings, micro_trades_today: int, checks: list[str]
) -> str | None:
    """The micro-only gates; the reason to skip, or None."""
    if not settings.enabled:
        return "micro-trading is switched off"
    checks.append("micro-trading enabled")
    if str(request.trend_window) not in {str(w) for w in MICRO_TREND_WINDOWS}:
        return f"trend window {request.trend_window!r} is not intraday or 1d: not a micro-trade signal"
    if micro_trades_today >= settings.max_daily:
        return (
            f"{micro_trades_today} micro-trades already opened today, the daily limit is {settings.max_daily}"
        )
    checks.append(f"micro-trades today {micro_trades_today} < {settings.max_daily}")
    if not request.intraday_atr > 0:
        return f"intraday ATR {request.intraday_atr} for {request.ticker} is not positive: no stop can be set"
    return None


def mixed_position_reason(ticker: str, positions: Iterable[OpenPosition], *, micro: bool) -> str | None:
    """A ticker is held either as a micro-trade or as a standard position, never both: one
    position has one set of stops, and a micro-trade's tight stop and timed close must not
    govern a standard holding (nor the other way round). The reason to refuse, or None."""
    held = next((p for p in positions if p.ticker == ticker), None)
    if held is None:
        return None
    if micro:
        return (
            f"{ticker} is already held as a micro-trade: one micro-trade per ticker at a time"
            if held.is_micro_trade
            else f"{ticker} is held as a standard position: no micro-trade on top of it"
        )
    return (
        f"{ticker} is held as a micro-trade: no standard entry until it closes"
        if held.is_micro_trade
        else None
    )


def evaluate_micro_trade(
    request: MicroTradeRequest,
    *,
    portfolio: PortfolioState,
    tier: RiskTierConfig,
    sizer: PositionSizer,
    breakers: CircuitBreakerState,
    micro_trades_today: int,
    now: datetime,
    settings: MicroTradingSettings | None = None,
    stops: StopSettings | None = None,
) -> MicroTradeDecision:
    """Decide one micro-trade: micro gates, then the shared gates, then the shared sizer with
    the micro cap, then stops at 1.0x intraday ATR and take-profit at 1.5x that distance."""
    settings = settings or MicroTradingSettings()
    checks: list[str] = []
    reason = (
        _micro_gates(request, settings, micro_trades_today, checks)
        or mixed_position_reason(request.ticker, portfolio.positions, micro=True)
        or entry_guards.new_entry_block_reason(
            request.ticker,
            portfolio.positions,
            breakers,
            now,
            max_open_positions=settings.max_open_positions,
            checks=checks,
        )
    )
    if reason:
        return _skip(reason, checks)
    multiplier = micro_stop_multiplier(
        request,
        settings,
        earnings_within_sessions=sizer.settings.earnings_reduce_within_sessions,
        stops=stops,
    )
    stop_distance = request.intraday_atr * multiplier
    capped_tier = replace(tier, max_position_pct=min(tier.max_position_pct, settings.allocation_cap_pct))
    sizing = SizingRequest(
        request.ticker,
        request.sector,
        request.confidence,
        request.current_price,
        stop_distance,
        request.sessions_until_earnings,
    )
    size = sizer.compute(sizing, portfolio, capped_tier)
    if size.rejected:
        return _skip(size.rejection_reason or "position sizer rejected the micro-trade", checks, size)
    checks.append(
        f"sized at {size.share_quantity} shares (${size.dollar_amount}), micro cap "
        f"{settings.allocation_cap_pct:%} of the Active Pool"
    )
    try:
        stops = stop_loss_manager.compute_initial_levels(
            request.current_price, request.intraday_atr, multiplier, settings.take_profit_ratio, now
        )
    except ValueError as exc:  # e.g. the stop would sit at or below zero
        return _skip(f"no valid micro stop: {exc}", checks, size)
    reason = (
        f"micro-trade {request.ticker}: {size.share_quantity} shares, stop {stops.stop_loss_price} "
        f"({multiplier}x intraday ATR {request.intraday_atr}), take-profit {stops.take_profit_price} "
        f"({settings.take_profit_ratio}x the stop distance)"
    )
    return MicroTradeDecision(True, reason, tuple(checks), size, stops)


def positions_to_auto_close(
    positions: Iterable[OpenPosition], now: datetime, settings: MicroTradingSettings | None = None
) -> tuple[MicroExitProposal, ...]:
    """Micro positions held for `max_hold` or longer, to close at market. A micro position
    whose open time is unknown is closed too: it cannot be shown to be inside its hold."""
    settings = settings or MicroTradingSettings()
    trading_window.require_aware(now, "now")
    exits = []
    for p in positions:
        if not p.is_micro_trade:
            continue
        if p.opened_at is None:
            reason = f"micro position {p.ticker} has no recorded open time: closed as past its maximum hold"
        elif now - p.opened_at >= settings.max_hold:
            reason = (
                f"micro position {p.ticker} held {now - p.opened_at} since {p.opened_at.isoformat()}, "
                f"maximum hold {settings.max_hold}: closed at market"
            )
        else:
            continue
        exits.append(MicroExitProposal(p.ticker, p.quantity, p.current_price, reason))
    return tuple(exits)
