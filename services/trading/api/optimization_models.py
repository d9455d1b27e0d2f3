"""Optimization requests and results as the API takes and gives them (issue 16).

The request's types are checked here; `OptimizationConfig.parse` then checks the rest (each
parameter against its setting's bounds, the calendar range, end after start) and names the
field it refuses (`space.<parameter>` inside the space). A search starts from the engine's
default settings at the chosen tier, whatever the owner's configuration (docs/decisions.md).

The results carry what a page needs: progress, the trials table (parameters, state, objective,
metrics, the node that ran each), the parameters' importance, the best trial with its equity,
the Deflated Sharpe Ratio and the Probability of Backtest Overfitting (with a histogram of
CSCV's logits), and for a walk-forward run each window's in-sample and out-of-sample figures
and equity, the stitched out-of-sample equity and the parameters' stability.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.trading.api.backtest_models import BacktestBasics, EquityPoint
from services.trading.api.inputs import InputDecimal, JsonBool, JsonInt
from services.trading.api.models import ApiModel
from services.trading.optimize.search_space import Tunable

SpaceNumber = Annotated[InputDecimal, Field(ge=Decimal("-1e12"), le=Decimal("1e12"))]


class SpaceRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    low: SpaceNumber
    high: SpaceNumber
    step: SpaceNumber | None = Field(None, description="Values low, low + step, ... high (none: continuous).")
    log: JsonBool = Field(False, description="Sample on a log scale (low above 0, no step).")


class SpaceChoices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    choices: list[SpaceNumber] = Field(min_length=1, max_length=100)


class WalkForwardRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    train: JsonInt = Field(ge=20, le=20_000, description="Sessions of each train period.")
    test: JsonInt = Field(ge=1, le=20_000, description="Sessions of each test period.")
    step: JsonInt | None = Field(
        None, ge=1, le=20_000, description="Sessions between windows (default: test)."
    )
    anchored: JsonBool = Field(False, description="Every train period starts at start_date.")


class OptimizationRequest(BacktestBasics):
    signals: Literal["database", "momentum"] = Field(
        "momentum", description="momentum: the sample SMA crossover signal (its windows can be tuned)."
    )
    fill_timing: Literal["bar_range", "live"] = "bar_range"
    space: dict[Annotated[str, Field(max_length=80)], SpaceRange | SpaceChoices | list[SpaceNumber]] = Field(
        min_length=1,
        max_length=20,
        description="Parameter -> {low, high, step?, log?} or {choices} or [values]. Tunable: the run's "
        "tier's min_confidence, stop_loss_atr_multiplier, reward_risk_ratio, base_allocation_pct, "
        "max_position_pct, max_sector_pct, max_portfolio_heat (tier.field for another tier); "
        "max_open_positions, absolute_position_cap, reserve_siphon_pct, trailing_activation_fraction, "
        "daily_loss_limit_pct, single_position_loss_pct, gradual_entry_tranches, signal_fast_window, "
        "signal_slow_window.",
    )
    objective: Literal["sharpe", "sortino", "calmar", "total_return", "profit_factor"] = "sharpe"
    min_trades: JsonInt = Field(0, ge=0, le=1_000_000, description="Fewer closed trades: infeasible.")
    max_drawdown: InputDecimal | None = Field(
        None, gt=0, le=1, max_digits=20, description="A deeper drawdown (a fraction): infeasible."
    )
    sampler: Literal["tpe", "grid", "random"] = "tpe"
    seed: JsonInt = Field(0, ge=0, le=2**32 - 1)
    trials: JsonInt = Field(50, ge=1, le=10_000, description="Per search (per window in a walk-forward run).")
    walk_forward: WalkForwardRequest | None = None

    def as_parse_input(self) -> dict[str, Any]:
        raw = self.model_dump(exclude={"space", "walk_forward"})
        raw["space"] = {name: _space(spec) for name, spec in self.space.items()}
        raw["max_drawdown"] = None if self.max_drawdown is None else float(self.max_drawdown)
        if self.walk_forward is not None:
            raw["walk_forward"] = self.walk_forward.model_dump()
        return raw


def _space(spec: SpaceRange | SpaceChoices | list[Decimal]) -> Any:
    if isinstance(spec, SpaceRange):
        return spec.model_dump(exclude_none=True)
    if isinstance(spec, SpaceChoices):
        return {"choices": spec.choices}
    return {"choices": spec}


class TunableParameter(ApiModel):
    name: str
    scope: Literal["tier", "engine"] = Field(
        description="tier: the run's tier's field (prefix another tier's name, conservative.min_confidence)."
    )
    kind: Literal["int", "float"]
    low: float
    high: float
    low_open: bool = Field(description="The low bound itself is refused (a value must be above it).")
    bounds: str = Field(description="The allowed values as an interval, e.g. (0, 20].")
    description: str


class TunableParameters(ApiModel):
    """What a search space may name, with the values each setting accepts."""

    items: list[TunableParameter]

    @classmethod
    def of(cls, tier: Mapping[str, Tunable], engine: Mapping[str, Tunable]) -> TunableParameters:
        return cls(
            items=[
                TunableParameter(
                    name=name,
                    scope=scope,
                    kind="int" if t.kind is int else "float",
                    low=t.low,
                    high=t.high,
                    low_open=t.low_open,
                    bounds=t.bounds,
                    description=t.description,
                )
                for scope, tunables in (("tier", tier), ("engine", engine))
                for name, t in tunables.items()
            ]
        )


class OptimizationAccepted(ApiModel):
    optimization_id: UUID
    status: Literal["running"]
    result_url: str


Status = Literal["running", "completed", "failed", "interrupted"]


class OptimizationSummary(ApiModel):
    id: UUID
    kind: Literal["search", "walk_forward"]
    status: Status
    progress: float = Field(description="0..1")
    objective: str
    trials_planned: int
    trials_done: int
    best_trial: int | None = Field(description="A search's best feasible trial (walk-forward: per window).")
    best_value: float | None
    best_params: dict[str, Any] | None
    dsr: dict[str, Any] | None = Field(
        description="Deflated Sharpe Ratio of the best trial (daily Sharpe ratios), or {error}."
    )
    pbo: dict[str, Any] | None = Field(description="Probability of Backtest Overfitting by CSCV, or {error}.")
    error: str | None
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> OptimizationSummary:
        return cls(**{name: row[name] for name in cls.model_fields})


class TrialView(ApiModel):
    window_index: int | None
    number: int
    params: dict[str, Any]
    state: Literal["complete", "infeasible", "failed"]
    value: float | None = Field(description="The objective; null when not run or not finite.")
    value_infinite: bool
    reason: str | None = Field(description="Why infeasible, or the error of a failed trial.")
    metrics: dict[str, Any] | None
    node_id: str | None = Field(description="The Ray node that ran the trial.")
    seconds: float | None
    sessions: int = Field(description="Daily returns stored (the period's sessions; 0 when failed).")
    finished_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> TrialView:
        value = row["value"]
        return cls(
            **{name: row[name] for name in cls.model_fields if name in row},
            value_infinite=value is not None and value == float("inf"),
        )


class WindowView(ApiModel):
    window_index: int
    train_start: date
    train_end: date
    test_start: date
    test_end: date
    best_trial: int | None
    best_params: dict[str, Any] | None
    in_sample: dict[str, Any] | None = Field(description="The best trial's metrics on the train period.")
    out_of_sample: dict[str, Any] | None = Field(description="The same parameters on the test period.")
    degradation: float | None = Field(description="Out-of-sample over in-sample objective (null: IS <= 0).")
    in_sample_equity: list[EquityPoint]
    oos_equity: list[EquityPoint]
    dsr: dict[str, Any] | None
    pbo: dict[str, Any] | None
    importance: dict[str, float] | None
    error: str | None


class OptimizationView(OptimizationSummary):
    importance: dict[str, float] | None = Field(description="fANOVA importance of each parameter (search).")
    summary: dict[str, Any] = Field(
        description="Search: best_equity. Walk-forward: oos_equity (stitched), out_of_sample_metrics, "
        "in_sample_mean, out_of_sample_mean, degradation, stability."
    )
    best_equity: list[EquityPoint] = Field(description="The best trial's equity (search; in-sample).")
    oos_equity: list[EquityPoint] = Field(description="The stitched out-of-sample equity (walk-forward).")
    trials: list[TrialView]
    windows: list[WindowView]

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> OptimizationView:  # type: ignore[override]
        values = {name: row[name] for name in OptimizationSummary.model_fields}
        summary = row["summary"] or {}
        return cls(
            **values,
            importance=row["importance"],
            summary={k: v for k, v in summary.items() if k not in ("best_equity", "oos_equity")},
            best_equity=summary.get("best_equity") or [],
            oos_equity=summary.get("oos_equity") or [],
            trials=[TrialView.of(t) for t in row["trials"]],
            windows=[WindowView(**{k: w[k] for k in WindowView.model_fields}) for w in row["windows"]],
        )
