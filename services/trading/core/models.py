"""Plain values the decision core works on (seed task 3.1).

Everything here is a frozen dataclass: rules take these values and return new ones, never
mutate. Money, prices and quantities are `Decimal`; statistics (Sharpe, win rate,
correlation) are `float`. Quantities derivable from other fields (market value, Active Pool,
portfolio heat, sector exposure) are properties, so they can never disagree with their inputs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

from services.shared.schemas import (
    CircuitBreakerTriggerType,
    RecommendationAction,
    RecommendationMode,
    RiskTierName,
    TradingDecisionType,
    TrendWindow,
)

ZERO = Decimal(0)
T = TypeVar("T")


class cached_value(Generic[T]):
    """`functools.cached_property` without the lock Python 3.11 takes on every first read (a
    backtest builds tens of thousands of `PortfolioState`s): the value is computed on first
    read and kept in the instance's `__dict__`, where later reads find it directly. The
    values here are immutable, so two threads computing one at once get the same number."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self  # type: ignore[return-value]  # read on the class: the descriptor itself
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


@dataclass(frozen=True, slots=True)
class RiskTierConfig:
    """The knobs one risk tier turns (docs/contracts.md section 5). Fractions are of the Active Pool or
    of total portfolio value, written as Decimals in [0, 1]."""

    name: RiskTierName
    min_confidence: Decimal
    base_allocation_pct: Decimal
    max_position_pct: Decimal
    stop_loss_atr_multiplier: Decimal
    reward_risk_ratio: Decimal
    max_sector_pct: Decimal
    max_portfolio_heat: Decimal


def _tier(name: RiskTierName, *values: str) -> RiskTierConfig:
    return RiskTierConfig(name, *(Decimal(v) for v in values))


# docs/contracts.md section 5, column by column: min_confidence, base_allocation_pct, max_position_pct,
# stop_loss_atr_multiplier, reward_risk_ratio, max_sector_pct, max_portfolio_heat.
RISK_TIER_DEFAULTS: Mapping[RiskTierName, RiskTierConfig] = {
    RiskTierName.CONSERVATIVE: _tier(
        RiskTierName.CONSERVATIVE, "0.75", "0.03", "0.05", "1.5", "2.0", "0.25", "0.06"
    ),
    RiskTierName.MODERATE: _tier(RiskTierName.MODERATE, "0.65", "0.05", "0.10", "2.0", "2.0", "0.35", "0.10"),
    RiskTierName.AGGRESSIVE: _tier(
        RiskTierName.AGGRESSIVE, "0.55", "0.08", "0.15", "2.5", "1.5", "0.50", "0.15"
    ),
}


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One row of the upstream `recommendations` table (docs/contracts.md section 3), as read.

    `confidence` is kept as the raw float so that bad upstream values (NaN, out of range)
    reach the decision core and become skip decisions with a reason, not crashes.
    """

    id: int
    ticker: str
    action: RecommendationAction | str
    confidence: float
    mode: RecommendationMode | str
    trend_window: TrendWindow | str
    thesis: str
    generated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Recommendation:
        """A `recommendations` row as the store or the backtest loader read it."""
        return cls(*(row[name] for name in RECOMMENDATION_COLUMNS))


RECOMMENDATION_COLUMNS = (
    "id",
    "ticker",
    "action",
    "confidence",
    "mode",
    "trend_window",
    "thesis",
    "generated_at",
)


@dataclass(frozen=True, slots=True)
class OpenPosition:
    ticker: str
    quantity: Decimal
    entry_price: Decimal
    current_price: Decimal
    sector: str
    stop_loss_price: Decimal
    take_profit_price: Decimal
    signal_confidence: Decimal
    is_micro_trade: bool = False
    opened_at: datetime | None = None

    @property
    def market_value(self) -> Decimal:
        return self.quantity * self.current_price

    @property
    def cost_basis(self) -> Decimal:
        return self.quantity * self.entry_price

    @property
    def unrealized_pnl(self) -> Decimal:
        return self.quantity * (self.current_price - self.entry_price)

    @property
    def unrealized_pnl_pct(self) -> Decimal:
        return (self.current_price - self.entry_price) / self.entry_price

    @property
    def risk_dollars(self) -> Decimal:
        """What is lost if the stop fires at its price: the position's share of heat."""
        return self.quantity * max(self.entry_price - self.stop_loss_price, ZERO)


@dataclass(frozen=True)
class PortfolioState:
    """The account as the decision core sees it at one instant.

    Only positions, cash and the Reserve Pool balance are stored; everything else follows
    from them (docs/contracts.md section 6: `active_pool = total_value - reserve`). The state is immutable,
    so each derived figure is summed once, on first use, and kept (`cached_value` writes to
    the instance `__dict__`, hence no `slots` here).
    """

    positions: tuple[OpenPosition, ...]
    cash: Decimal
    reserve_pool: Decimal = ZERO

    @cached_value
    def total_value(self) -> Decimal:
        return self.cash + sum((p.market_value for p in self.positions), ZERO)

    @cached_value
    def active_pool(self) -> Decimal:
        return self.total_value - self.reserve_pool

    @property
    def open_position_count(self) -> int:
        return len(self.positions)

    @property
    def sector_exposure(self) -> dict[str, Decimal]:
        """Market value held per sector (a fresh dict: the caller may change it)."""
        return dict(self._sector_exposure)

    @property
    def sector_exposure_read_only(self) -> Mapping[str, Decimal]:
        """`sector_exposure` itself, not a copy, for a caller that only reads it."""
        return self._sector_exposure

    @cached_value
    def _sector_exposure(self) -> dict[str, Decimal]:
        exposure: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for position in self.positions:
            exposure[position.sector] += position.market_value
        return dict(exposure)

    @cached_value
    def risk_dollars(self) -> Decimal:
        """`sum(qty * max(entry - stop, 0))`: what is lost if every stop fires at its price."""
        return sum((p.risk_dollars for p in self.positions), ZERO)

    @cached_value
    def portfolio_heat(self) -> Decimal:
        """`sum(qty * max(entry - stop, 0)) / total_value` (docs/contracts.md section 6); 0 when empty."""
        total = self.total_value
        if total <= 0:
            return ZERO
        return self.risk_dollars / total

    def position(self, ticker: str) -> OpenPosition | None:
        return next((p for p in self.positions if p.ticker == ticker), None)


@dataclass(frozen=True, slots=True)
class SizingAdjustment:
    """One step of the sizing arithmetic, shown in the decision trace."""

    name: str
    factor: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class PositionSizeResult:
    dollar_amount: Decimal
    share_quantity: Decimal
    allocation_pct: Decimal
    adjustments: tuple[SizingAdjustment, ...] = ()
    rejected: bool = False
    rejection_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StopLevels:
    stop_loss_price: Decimal
    take_profit_price: Decimal
    trailing_stop_active: bool
    atr_value: Decimal
    atr_multiplier: Decimal
    reward_risk_ratio: Decimal
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class StopTrigger:
    ticker: str
    trigger_type: str  # "stop_loss" | "take_profit" | "trailing_stop" | "price_unavailable"
    current_price: Decimal | None
    trigger_price: Decimal | None


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    ticker: str
    entry_price: Decimal
    exit_price: Decimal
    quantity: Decimal
    entry_at: datetime
    exit_at: datetime
    recommendation_id: int | None = None
    is_micro_trade: bool = False
    fees: Decimal = ZERO

    @property
    def pnl(self) -> Decimal:
        return (self.exit_price - self.entry_price) * self.quantity - self.fees

    @property
    def pnl_pct(self) -> Decimal:
        return self.pnl / (self.entry_price * self.quantity)

    @property
    def hold_duration(self) -> timedelta:
        return self.exit_at - self.entry_at


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    total_portfolio_value: Decimal
    active_pool: Decimal
    reserve_pool: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    daily_pnl: Decimal
    trade_count: int
    win_count: int
    loss_count: int
    win_rate: float
    avg_win: Decimal
    avg_loss: Decimal
    profit_factor: float
    sharpe_ratio: float
    max_drawdown: float
    current_drawdown: float
    portfolio_heat: Decimal
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class CircuitBreakerState:
    """Which breakers are tripped and until when. `ticker_cooldowns` maps a ticker to the
    instant its re-entry is allowed again."""

    active: bool = False
    trigger_type: CircuitBreakerTriggerType | None = None
    triggered_at: datetime | None = None
    cooldown_expires: datetime | None = None
    ticker_cooldowns: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReservePoolState:
    balance: Decimal = ZERO
    total_deposits: Decimal = ZERO
    total_withdrawals: Decimal = ZERO
    last_updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class TradingDecision:
    """One act-or-skip decision, as persisted in `trading_decisions` (seed task 1.1)."""

    id: UUID
    recommendation_id: int | None
    ticker: str
    decision: TradingDecisionType
    side: str
    skip_reason: str | None
    computed_position_size: Decimal
    computed_share_quantity: Decimal
    risk_tier_at_decision: RiskTierName
    portfolio_heat_at_decision: Decimal
    active_pool_at_decision: Decimal
    reserve_pool_at_decision: Decimal
    circuit_breaker_status: str
    correlation_check_result: Mapping[str, Any]
    sector_exposure_check_result: Mapping[str, Any]
    earnings_proximity_flag: bool
    is_micro_trade: bool
    decision_trace: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A held position with its stop levels (None when the engine has none for it)."""

    position: OpenPosition
    levels: StopLevels | None
