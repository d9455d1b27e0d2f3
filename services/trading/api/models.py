"""Response models of the read endpoints (seed task 20.1).

Conventions, the same in every response:
- money, prices, quantities and fractions computed from them are `Decimal`, sent as JSON
  strings ("1234.50"): exact, as stored; statistics (Sharpe, win rate, drawdown) are numbers;
- a statistic that is not finite is `null`, and profit factor, which is infinite when there
  are profits and no losses (docs/contracts.md section 6), comes with `profit_factor_infinite: true`;
- times are ISO 8601 with their offset; lists are pages: `items`, `total`, `limit`, `offset`.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

T = TypeVar("T")


def _plain_decimal(value: Decimal) -> str:
    return format(value, "f")  # "10000", never "1E+4"


# A Decimal sent as a plain decimal string: exact, and readable by any JSON client.
Dec = Annotated[Decimal, PlainSerializer(_plain_decimal, return_type=str, when_used="json")]


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _finite_or_none(cls, value: Any) -> Any:
        # NaN and infinity are not JSON: a statistic that is not finite is reported as null.
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value


class Page(ApiModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Rows matching the filters, across all pages.")
    limit: int
    offset: int


class ErrorBody(BaseModel):
    detail: str


# -- status and positions --------------------------------------------------------------------


class TickerCooldown(ApiModel):
    ticker: str
    until: datetime


class CircuitBreakerView(ApiModel):
    active: bool = Field(description="A trading halt is in force now.")
    trigger: str | None = Field(None, description="daily_loss, volatility or manual.")
    reason: str | None = None
    triggered_at: datetime | None = None
    until: datetime | None = Field(
        None, description="When the halt ends; null while active means until resolved by hand."
    )
    ticker_cooldowns: list[TickerCooldown] = Field(default_factory=list)


class PositionView(ApiModel):
    ticker: str
    sector: str
    quantity: Dec
    entry_price: Dec
    current_price: Dec
    price_as_of: datetime | None = Field(
        None, description="When the price was last known; null: no market price, valued at entry."
    )
    market_value: Dec
    cost_basis: Dec
    unrealized_pnl: Dec
    unrealized_pnl_pct: Dec
    stop_loss_price: Dec | None = Field(None, description="null: the engine has no stop for it.")
    take_profit_price: Dec | None = None
    trailing_stop_active: bool = False
    atr_value: Dec | None = None
    risk_dollars: Dec = Field(description="quantity * max(entry - stop, 0): its share of portfolio heat.")
    signal_confidence: Dec | None = None
    is_micro_trade: bool = False
    opened_at: datetime | None = None


class EngineView(ApiModel):
    attached: bool = Field(description="This process serves an engine.")
    runs_here: bool = Field(description="This process starts and runs the engine loop.")
    started: bool
    holds_lock: bool = Field(description="Holds the account's engine lock (one engine per account).")
    loop_running: bool
    mode: str | None = None
    error: str | None = Field(None, description="Why the loop stopped, if it did.")


class StatusView(ApiModel):
    as_of: datetime
    enabled: bool
    paused: bool
    risk_tier: str
    circuit_breaker: CircuitBreakerView
    total_value: Dec
    cash: Dec
    active_pool: Dec = Field(description="total value - Reserve Pool")
    reserve_pool: Dec
    portfolio_heat: Dec = Field(description="sum(qty * max(entry - stop, 0)) / total value")
    max_portfolio_heat: Dec = Field(description="The current tier's limit.")
    open_position_count: int
    open_positions: list[PositionView]
    last_decision_at: datetime | None
    micro_entries_today: int = Field(
        description="Micro-trade entries decided today (New York): what the engine "
        "counts against micro_trading_max_daily."
    )
    engine: EngineView
    trading_mode: Literal["paper", "live"] = Field(
        description="Paper or real money: the attached engine's mode, else STONKS_TRADING_MODE."
    )
    broker: Literal["paper", "alpaca"] = Field(
        description="Where the engine's orders go: the built-in paper broker or Alpaca (STONKS_BROKER)."
    )


class PositionsView(ApiModel):
    as_of: datetime
    total_value: Dec
    items: list[PositionView]
    sector_exposure: dict[str, Dec] = Field(description="Market value held per sector.")


# -- decisions and trades --------------------------------------------------------------------


class DecisionView(ApiModel):
    id: UUID
    recommendation_id: int | None
    ticker: str
    decision: Literal["act", "skip"]
    side: Literal["buy", "sell"]
    skip_reason: str | None
    category: str = Field(description="skip: the check that refused; act: entry or the exit rule that fired.")
    computed_position_size: Dec
    computed_share_quantity: Dec
    risk_tier_at_decision: str
    portfolio_heat_at_decision: Dec
    active_pool_at_decision: Dec
    reserve_pool_at_decision: Dec
    circuit_breaker_status: str
    earnings_proximity_flag: bool
    is_micro_trade: bool
    correlation_check_result: dict[str, Any]
    sector_exposure_check_result: dict[str, Any]
    decision_trace: dict[str, Any]
    created_at: datetime


class TradeView(ApiModel):
    id: int
    ticker: str
    quantity: Dec
    entry_price: Dec
    exit_price: Dec
    fees: Dec
    pnl: Dec
    pnl_pct: Dec
    entry_at: datetime
    exit_at: datetime
    hold_duration_seconds: float
    exit_reason: str
    is_micro_trade: bool
    recommendation_id: int | None
    trading_decision_id: UUID | None
    thesis: str | None = Field(None, description="The recommendation's thesis, when the trade came from one.")


class TaxLotView(ApiModel):
    """One piece of the FIFO lot book: open, closed, or closed with its loss washed."""

    id: int
    ticker: str
    status: Literal["open", "closed", "washed"]
    quantity: Dec
    cost_basis_per_share: Dec = Field(
        description="The price paid, plus the price part of any washed loss absorbed (per share)."
    )
    fees: Dec = Field(description="Commissions and fees in the basis (this piece's share, and washed fees).")
    cost_basis: Dec = Field(description="cost_basis_per_share × quantity + fees.")
    acquisition_date: date
    holding_period_start: date = Field(description="Earlier than acquisition when a wash sale tacked on.")
    closed_date: date | None
    exit_price: Dec | None
    sale_fees: Dec = Field(description="This piece's share of the selling costs.")
    proceeds: Dec | None = Field(description="Amount realized: exit_price × quantity − sale_fees.")
    realized_pnl: Dec | None = Field(description="proceeds − cost_basis, before any wash-sale disallowance.")
    disallowed_loss: Dec = Field(description="The loss a wash sale deferred into a replacement's basis.")
    holding_term: Literal["short", "long"] | None = Field(
        description="Short or long term for a closed or washed piece (held more than one year); null while open."
    )
    wash_sale: str | None = Field(description="The wash sale this piece's loss went to, described.")
    basis_adjustment: str | None = Field(description="The washed loss this piece absorbed, described.")


# -- performance -----------------------------------------------------------------------------


class TradeStatsView(ApiModel):
    trade_count: int
    win_count: int
    loss_count: int
    win_rate: float | None
    avg_win: Dec
    avg_loss: Dec
    profit_factor: float | None = Field(description="null when infinite (see profit_factor_infinite).")
    profit_factor_infinite: bool
    realized_pnl: Dec
    unrealized_pnl: Dec


class MetricsView(ApiModel):
    as_of: datetime
    total_portfolio_value: Dec
    active_pool: Dec
    reserve_pool: Dec
    unrealized_pnl: Dec
    realized_pnl: Dec
    daily_pnl: Dec
    trade_count: int
    win_count: int
    loss_count: int
    win_rate: float | None
    avg_win: Dec
    avg_loss: Dec
    profit_factor: float | None = Field(description="null when infinite (see profit_factor_infinite).")
    profit_factor_infinite: bool
    sharpe_ratio: float | None = Field(description="Trailing 30 daily returns, annualised, risk-free 0.")
    max_drawdown: float | None
    current_drawdown: float | None
    portfolio_heat: Dec
    micro: TradeStatsView = Field(description="Micro-trades, kept apart (seed task 17).")
    history_days: int = Field(description="End-of-day snapshots the figures are computed from.")


class SnapshotView(ApiModel):
    snapshot_date: date
    portfolio_value: Dec
    active_pool: Dec
    reserve_pool: Dec
    daily_return: float | None
    cumulative_return: float | None
    unrealized_pnl: Dec
    realized_pnl: Dec
    daily_pnl: Dec | None = None
    win_count: int
    loss_count: int
    win_rate: float | None
    trade_count: int | None = None
    profit_factor: float | None = None
    profit_factor_infinite: bool = False
    sharpe_ratio: float | None
    max_drawdown: float | None
    current_drawdown: float | None
    portfolio_heat: Dec
    risk_tier: str


# -- notifications ---------------------------------------------------------------------------


class NotificationView(ApiModel):
    id: int
    channel: str
    event_type: str
    message: str
    delivery_status: str
    retry_count: int
    error_message: str | None
    created_at: datetime
    delivered_at: datetime | None


# -- probes ----------------------------------------------------------------------------------


class Health(ApiModel):
    status: Literal["ok"]


CheckState = Literal["ok", "degraded", "down"]


class Readiness(ApiModel):
    status: Literal["ready", "degraded", "not_ready"] = Field(
        description="not_ready (503) when any check is down; degraded (200) when one works more slowly."
    )
    checks: dict[str, CheckState] = Field(
        description="Each dependency this process uses: database, migrations; redis, engine (its lock "
        "and loop) and wake_up (LISTEN for new recommendations) when the engine runs in this "
        "process; paper_broker when its loop runs here too."
    )
    detail: dict[str, str] = Field(default_factory=dict, description="Why a check is not ok.")


class TierVerdictView(ApiModel):
    """One verdict of the risk tier (docs/contracts.md section 6.9): a change by the autopilot
    or the owner, or a session close that held the tier, with the figures it read."""

    id: int
    created_at: datetime
    verdict: Literal["changed", "held"]
    previous_tier: str
    new_tier: str
    trigger_source: str = Field(
        description="market_close, emergency_liquidation, or where an owner's change came from."
    )
    reason: str
    figures: dict[str, Any] = Field(
        description="What the rule read: rule, win_rate (null: not judged), trades, wins, drawdown, "
        "reserve_pct; `memory` is the controller's state after the verdict."
    )
