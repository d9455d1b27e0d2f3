"""The nine things the owner is told about, as values (seed task 16.1).

A `NotificationEvent` is the event type, when it happened and the figures that explain it.
The builders below name those figures, so the engine passes them by keyword instead of
guessing dictionary keys; `formatting.py` reads the same keys. Fractions (loss, drawdown,
win rate) are fractions (0.032), money is Decimal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from services.shared.schemas import NotificationEventType as E
from services.trading.core.circuit_breaker import BreakerResolution, CircuitBreakerEvent
from services.trading.core.risk_tier_controller import RiskTierChange
from services.trading.core.trading_window import require_aware

Number = Decimal | int | float


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """Something the owner must hear about, with the figures that explain it."""

    event_type: E
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware(self.occurred_at, "occurred_at")
        object.__setattr__(self, "event_type", E(self.event_type))
        # A read-only copy: the caller's dict may change after the event is queued.
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))


def circuit_breaker_triggered(
    occurred_at: datetime,
    *,
    trigger_type: str,
    reason: str,
    threshold_value: Number | None = None,
    actual_value: Number | None = None,
    cooldown_expires: datetime | None = None,
    ticker: str | None = None,
) -> NotificationEvent:
    """Thresholds and actual values as the breaker records them: loss fractions for
    daily_loss/single_position, a stop-out count for volatility."""
    return NotificationEvent(
        E.CIRCUIT_BREAKER_TRIGGERED,
        occurred_at,
        {
            "trigger_type": str(trigger_type),
            "reason": reason,
            "threshold_value": threshold_value,
            "actual_value": actual_value,
            "cooldown_expires": cooldown_expires,
            "ticker": ticker,
        },
    )


def from_breaker_event(event: CircuitBreakerEvent) -> NotificationEvent:
    return circuit_breaker_triggered(
        event.triggered_at,
        trigger_type=event.trigger_type,
        reason=event.reason,
        threshold_value=event.threshold_value,
        actual_value=event.actual_value,
        cooldown_expires=event.cooldown_expires,
        ticker=event.ticker,
    )


def circuit_breaker_resumed(
    occurred_at: datetime, *, reason: str, trigger_type: str | None = None, ticker: str | None = None
) -> NotificationEvent:
    return NotificationEvent(
        E.CIRCUIT_BREAKER_RESUMED,
        occurred_at,
        {
            "trigger_type": None if trigger_type is None else str(trigger_type),
            "reason": reason,
            "ticker": ticker,
        },
    )


def from_breaker_resolution(resolution: BreakerResolution) -> NotificationEvent:
    return circuit_breaker_resumed(
        resolution.resolved_at,
        reason=resolution.reason,
        trigger_type=resolution.trigger_type,
        ticker=resolution.ticker,
    )


def risk_tier_changed(
    occurred_at: datetime,
    *,
    previous_tier: str,
    new_tier: str,
    reason: str,
    win_rate: Number | None = None,
    drawdown: Number | None = None,
    reserve_pct: Number | None = None,
) -> NotificationEvent:
    return NotificationEvent(
        E.RISK_TIER_CHANGED,
        occurred_at,
        {
            "previous_tier": str(previous_tier),
            "new_tier": str(new_tier),
            "reason": reason,
            "win_rate": win_rate,
            "drawdown": drawdown,
            "reserve_pct": reserve_pct,
        },
    )


def from_risk_tier_change(change: RiskTierChange) -> NotificationEvent:
    metrics = change.trigger_metrics
    return risk_tier_changed(
        change.changed_at,
        previous_tier=change.previous_tier,
        new_tier=change.new_tier,
        reason=change.reason,
        win_rate=metrics.get("win_rate"),
        drawdown=metrics.get("drawdown"),
        reserve_pct=metrics.get("reserve_pct"),
    )


def emergency_liquidation(
    occurred_at: datetime,
    *,
    drawdown: Number,
    threshold: Number,
    reserve_released: Decimal,
    positions_closed: int,
    total_value: Decimal,
    reason: str = "",
) -> NotificationEvent:
    return NotificationEvent(
        E.EMERGENCY_LIQUIDATION,
        occurred_at,
        {
            "drawdown": drawdown,
            "threshold": threshold,
            "reserve_released": reserve_released,
            "positions_closed": positions_closed,
            "total_value": total_value,
            "reason": reason,
        },
    )


def large_trade_pnl(
    occurred_at: datetime,
    *,
    ticker: str,
    quantity: Number,
    entry_price: Decimal,
    exit_price: Decimal,
    realized_pnl: Decimal,
    pnl_pct: Number | None = None,
    exit_reason: str | None = None,
) -> NotificationEvent:
    """A closed trade. Send every close: the service drops those under the owner's
    threshold (`large_trade_pnl_threshold`, absolute dollars, gains and losses alike)."""
    return NotificationEvent(
        E.LARGE_TRADE_PNL,
        occurred_at,
        {
            "ticker": ticker,
            "quantity": quantity,
            "entry_price": entry_price,
            "exit_price": exit_price,
            "realized_pnl": realized_pnl,
            "pnl_pct": pnl_pct,
            "exit_reason": exit_reason,
        },
    )


def daily_summary(
    occurred_at: datetime,
    *,
    session: date,
    total_value: Decimal,
    day_pnl: Decimal,
    day_pnl_pct: Number | None,
    realized_pnl: Decimal,
    trades_closed: int,
    wins: int,
    losses: int,
    open_positions: int,
    active_pool: Decimal,
    reserve: Decimal,
    risk_tier: str,
    reserve_high_water: str | None = None,
) -> NotificationEvent:
    """One session's figures; `realized_pnl` and the trade counts are that session's.
    `reserve_high_water` is the close's high-water notice (seed task 7.1), when the reserve
    holds more than its high-water share of the total."""
    return NotificationEvent(
        E.DAILY_SUMMARY,
        occurred_at,
        {
            "session": session,
            "total_value": total_value,
            "day_pnl": day_pnl,
            "day_pnl_pct": day_pnl_pct,
            "realized_pnl": realized_pnl,
            "trades_closed": trades_closed,
            "wins": wins,
            "losses": losses,
            "open_positions": open_positions,
            "active_pool": active_pool,
            "reserve": reserve,
            "risk_tier": str(risk_tier),
            "reserve_high_water": reserve_high_water,
        },
    )


def weekly_digest(
    occurred_at: datetime,
    *,
    week_start: date,
    week_end: date,
    total_value: Decimal,
    week_pnl: Decimal,
    week_pnl_pct: Number | None,
    realized_pnl: Decimal,
    trades_closed: int,
    win_rate: Number | None,
    sharpe: Number | None,
    max_drawdown: Number | None,
    reserve: Decimal,
    risk_tier: str,
) -> NotificationEvent:
    """The week's figures; Sharpe and drawdown as the performance tracker reports them."""
    return NotificationEvent(
        E.WEEKLY_DIGEST,
        occurred_at,
        {
            "week_start": week_start,
            "week_end": week_end,
            "total_value": total_value,
            "week_pnl": week_pnl,
            "week_pnl_pct": week_pnl_pct,
            "realized_pnl": realized_pnl,
            "trades_closed": trades_closed,
            "win_rate": win_rate,
            "sharpe": sharpe,
            "max_drawdown": max_drawdown,
            "reserve": reserve,
            "risk_tier": str(risk_tier),
        },
    )


def order_rejected(
    occurred_at: datetime,
    *,
    ticker: str,
    side: str,
    quantity: Number,
    order_reason: str,
    reject_reason: str | None,
    client_order_id: str,
    tranches_cancelled: int = 0,
) -> NotificationEvent:
    """The broker refused an order: its own words (`reject_reason`, e.g. "alpaca: insufficient
    buying power (HTTP 403, code 40310000)"), what the order was for (`order_reason`: entry,
    stop_loss...) and how many later tranches of its entry were cancelled with it."""
    return NotificationEvent(
        E.ORDER_REJECTED,
        occurred_at,
        {
            "ticker": ticker,
            "side": str(side),
            "quantity": quantity,
            "order_reason": str(order_reason),
            "reject_reason": reject_reason,
            "client_order_id": client_order_id,
            "tranches_cancelled": tranches_cancelled,
        },
    )


def reconciliation_discrepancy(
    occurred_at: datetime,
    *,
    discrepancy_id: int,
    kind: str,
    ticker: str | None,
    engine_figure: Number,
    broker_figure: Number,
    resolution: str,
    rule: str,
    pauses: bool,
    client_order_id: str | None = None,
) -> NotificationEvent:
    """Reconciliation found the broker's account different from the engine's books: what
    differs (`kind`: position, cash, an order...), both figures, and the rule that resolved it
    (`pauses`: new entries wait for the owner's acknowledgement)."""
    return NotificationEvent(
        E.RECONCILIATION_DISCREPANCY,
        occurred_at,
        {
            "discrepancy_id": discrepancy_id,
            "kind": kind,
            "ticker": ticker,
            "engine_figure": engine_figure,
            "broker_figure": broker_figure,
            "resolution": resolution,
            "rule": rule,
            "pauses": pauses,
            "client_order_id": client_order_id,
        },
    )
