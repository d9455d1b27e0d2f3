"""Backtest requests and results as the API takes and gives them (seed tasks 19.1, 20.1, 23.6).

The request's types are checked here; the backtester's own `BacktestConfig.parse` then
checks the rest (calendar range, end after start, ...) and names the field it refuses.
Signals from a CSV file are for the command line only: a path on the server is not an API
input.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.shared.schemas import RiskTierName
from services.trading.api.inputs import InputDecimal, IsoDate, JsonBool, JsonInt
from services.trading.api.models import ApiModel, Dec

TickerSymbol = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,14}$")]


class BacktestBasics(BaseModel):
    """The inputs every backtest takes, whether the API runs one (`BacktestRequest`) or a search
    runs many (`OptimizationRequest`). A subclass's fields follow these in the OpenAPI schema,
    and one it redefines (a default, a description) keeps its place here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_date: IsoDate
    end_date: IsoDate
    initial_capital: InputDecimal = Field(gt=0, le=Decimal("1e12"), allow_inf_nan=False, max_digits=24)
    risk_tier: RiskTierName = RiskTierName.MODERATE
    tickers: list[TickerSymbol] = Field(
        default_factory=list, max_length=500, description="Empty: every ticker with daily bars in the range."
    )
    signals: Literal["database", "momentum"] = Field(
        "database", description="database: the recommendations table; momentum: the sample SMA 10/30 signal."
    )
    slippage_bps: InputDecimal = Field(Decimal(5), ge=0, le=1000, allow_inf_nan=False, max_digits=20)
    commission_per_order: InputDecimal = Field(Decimal(0), ge=0, le=1000, allow_inf_nan=False, max_digits=20)
    commission_per_share: InputDecimal = Field(Decimal(0), ge=0, le=100, allow_inf_nan=False, max_digits=20)
    commission_pct: InputDecimal = Field(Decimal(0), ge=0, le=1, allow_inf_nan=False, max_digits=20)
    tranche_spacing_sessions: JsonInt = Field(1, ge=0, le=30)
    rebalance_weekly: JsonBool = True


class BacktestRequest(BacktestBasics):
    fill_timing: Literal["bar_range", "live"] = Field(
        "bar_range",
        description="bar_range: exits meet each daily bar's low and high; live: the session timed as "
        "the live engine replays daily bars (the open all session, tranches 30 minutes apart).",
    )

    def as_parse_input(self) -> dict[str, Any]:
        return self.model_dump()


class BacktestAccepted(ApiModel):
    backtest_id: UUID
    status: Literal["running"]
    result_url: str


class BacktestTradeView(ApiModel):
    ticker: str
    side: str
    quantity: Dec
    entry_price: Dec
    exit_price: Dec | None
    pnl: Dec | None
    fees: Dec
    entry_date: date
    exit_date: date | None
    hold_duration_days: int | None
    exit_reason: str | None
    recommendation_id: int | None


class BacktestSummary(ApiModel):
    id: UUID
    status: Literal["running", "completed", "failed"]
    progress: float = Field(description="0..1")
    error_message: str | None
    start_date: date
    end_date: date
    initial_capital: Dec
    risk_tier: str
    final_value: Dec | None
    total_return: float | None
    sharpe_ratio: float | None
    max_drawdown: float | None
    win_rate: float | None
    profit_factor: float | None = Field(description="null when infinite or not computed yet.")
    profit_factor_infinite: bool
    trade_count: int | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def fields_of(cls, row: Mapping[str, Any]) -> dict[str, Any]:
        values = {name: row[name] for name in cls.model_fields if name in row}
        pf = row["profit_factor"]
        values["profit_factor_infinite"] = pf is not None and pf == float("inf")
        return values

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> BacktestSummary:
        return cls(**cls.fields_of(row))


class EquityPoint(ApiModel):
    date: date
    value: Dec


class BacktestView(BacktestSummary):
    config: dict[str, Any]
    equity_curve: list[EquityPoint]
    data_gaps: list[dict[str, Any]]
    details: dict[str, Any]
    trades: list[BacktestTradeView]

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> BacktestView:
        values = cls.fields_of(row)
        values["trades"] = [
            BacktestTradeView(**{k: t[k] for k in BacktestTradeView.model_fields}) for t in row["trades"]
        ]
        return cls(**values)
