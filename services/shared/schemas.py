"""Enumerations shared by the engine, the paper broker, the API and the database (seed task 1.2).

Each enum's values are the exact strings stored in PostgreSQL CHECK constraints and sent on
the Redis queues, so a value renamed here must be renamed in a migration too.
"""

from __future__ import annotations

from enum import StrEnum


class TradingDecisionType(StrEnum):
    ACT = "act"
    SKIP = "skip"


class CircuitBreakerTriggerType(StrEnum):
    DAILY_LOSS = "daily_loss"
    SINGLE_POSITION = "single_position"
    VOLATILITY = "volatility"
    MANUAL = "manual"
    # Issue 14: a difference with the broker the engine cannot explain (migration 031): no
    # expiry, resolved when the owner acknowledges it.
    RECONCILIATION = "reconciliation"


class ReservePoolTriggerType(StrEnum):
    PROFIT_SIPHON = "profit_siphon"
    EMERGENCY_LIQUIDATION = "emergency_liquidation"
    MANUAL_ADJUSTMENT = "manual_adjustment"
    INITIAL = "initial"


class NotificationChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WEBHOOK = "webhook"
    TELEGRAM = "telegram"


class NotificationEventType(StrEnum):
    CIRCUIT_BREAKER_TRIGGERED = "circuit_breaker_triggered"
    CIRCUIT_BREAKER_RESUMED = "circuit_breaker_resumed"
    RISK_TIER_CHANGED = "risk_tier_changed"
    EMERGENCY_LIQUIDATION = "emergency_liquidation"
    LARGE_TRADE_PNL = "large_trade_pnl"
    DAILY_SUMMARY = "daily_summary"
    WEEKLY_DIGEST = "weekly_digest"
    ORDER_REJECTED = "order_rejected"  # issue 14: the broker refused an order (migration 029)
    RECONCILIATION_DISCREPANCY = "reconciliation_discrepancy"  # issue 14: the broker's account differs (031)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"


class RiskTierName(StrEnum):
    """Ordered from least to most risk; `RISK_TIER_ORDER` relies on this order."""

    CONSERVATIVE = "conservative"
    MODERATE = "moderate"
    AGGRESSIVE = "aggressive"


RISK_TIER_ORDER: tuple[RiskTierName, ...] = tuple(RiskTierName)


class RiskTierRule(StrEnum):
    """The risk-tier autopilot's rule (docs/contracts.md section 6.9)."""

    GUARDED = "guarded"  # the plan's thresholds with evidence, a chance to trade, a way back up
    PLAN = "plan"  # the plan's rule, literally


class RecommendationAction(StrEnum):
    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


class RecommendationMode(StrEnum):
    RESEARCH = "research"
    PAPER_ELIGIBLE = "paper_eligible"
    LIVE_ELIGIBLE = "live_eligible"


class TrendWindow(StrEnum):
    INTRADAY = "intraday"
    ONE_DAY = "1d"
    FIVE_DAYS = "5d"
    TWENTY_DAYS = "20d"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderReason(StrEnum):
    """Why an order job was sent (docs/contracts.md section 4)."""

    ENTRY = "entry"
    SIGNAL = "signal"  # a sell recommendation: the upstream signal ended the position
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TRAILING_STOP = "trailing_stop"
    REBALANCE = "rebalance"
    MICRO_EXIT = "micro_exit"
    EMERGENCY = "emergency"
    MANUAL = "manual"
    # Issue 14: a correcting entry written by reconciliation (shares gone at the broker).
    RECONCILIATION = "reconciliation"


class TradingMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class TaxLotStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    WASHED = "washed"


class MacroSeverity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
