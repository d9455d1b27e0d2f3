"""What a search maximises, and what a trial must satisfy to count (issue 16).

Objectives, all "higher is better", from one backtest:

- `sharpe`: the backtest's whole-run Sharpe (the performance tracker's formula, annualised);
- `sortino`: mean daily return over the downside deviation `sqrt(mean(min(r, 0)^2))`,
  annualised by sqrt(252); 0.0 with fewer than 2 returns, infinite when no day lost and the
  mean is positive (as the tracker treats a profit factor without losses);
- `calmar`: compound annual growth over the maximum drawdown (252 sessions a year); infinite
  without a drawdown and with growth, 0.0 without growth;
- `total_return`, `profit_factor`: the backtest's own.

Constraints: `min_trades` (closed trades) and `max_drawdown` (a fraction). A trial that breaks
one is *infeasible*: kept, with the reason, and handed to Optuna with its real value and a
positive constraint value per broken rule (`Trial.set_constraint`), so TPE ranks it below every
feasible trial and learns where the infeasible region is; the best trial is the best feasible
one. Each violation is relative to its limit so that one rule does not drown the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from services.trading.backtest.results import BacktestResult
from services.trading.core import performance_tracker
from services.trading.core.performance_tracker import TRADING_DAYS_PER_YEAR


class Objective(StrEnum):
    SHARPE = "sharpe"
    SORTINO = "sortino"
    CALMAR = "calmar"
    TOTAL_RETURN = "total_return"
    PROFIT_FACTOR = "profit_factor"


class ObjectiveError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def objective(value: Any) -> Objective:
    try:
        return Objective(str(value).strip().lower())
    except ValueError:
        names = ", ".join(o.value for o in Objective)
        raise ObjectiveError("objective", f"unknown objective {value!r}: choose one of {names}") from None


@dataclass(frozen=True, slots=True)
class TrialMetrics:
    """The figures of one backtest a search compares trials by."""

    total_return: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    profit_factor: float
    win_rate: float
    trade_count: int
    final_value: str  # a decimal string, as money is everywhere

    def value(self, of: Objective) -> float:
        return float(getattr(self, of.value))

    def to_json(self) -> dict[str, Any]:
        """JSON has no infinity: a non-finite figure is null, with `<name>_infinite` saying which."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
                out[f"{key}_infinite"] = value > 0
            else:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TrialMetrics:
        values = {}
        for key in cls.__dataclass_fields__:
            value = raw.get(key)
            if value is None and key != "final_value":
                value = math.inf if raw.get(f"{key}_infinite") else math.nan
            values[key] = value
        return cls(**values)


def sortino_ratio(returns: np.ndarray, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return 0.0
    mean = float(np.mean(r))
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside == 0:
        return math.inf if mean > 0 else 0.0
    return mean / downside * math.sqrt(periods_per_year)


def calmar_ratio(total_return: float, sessions: int, max_drawdown: float) -> float:
    if sessions <= 0 or total_return <= -1:
        return 0.0
    growth = (1.0 + total_return) ** (TRADING_DAYS_PER_YEAR / sessions) - 1.0
    if max_drawdown <= 0:
        return math.inf if growth > 0 else 0.0
    return growth / max_drawdown


def daily_returns(result: BacktestResult) -> np.ndarray:
    """One return per session of the run, the first against the initial capital."""
    values = [result.config.initial_capital, *(v for _, v in result.equity_curve)]
    return performance_tracker.daily_returns(values)


def trial_metrics(result: BacktestResult) -> TrialMetrics:
    m = result.metrics
    returns = daily_returns(result)
    return TrialMetrics(
        total_return=m.total_return,
        sharpe=m.sharpe_ratio,
        sortino=sortino_ratio(returns),
        calmar=calmar_ratio(m.total_return, len(returns), m.max_drawdown),
        max_drawdown=m.max_drawdown,
        profit_factor=m.profit_factor,
        win_rate=m.win_rate,
        trade_count=m.trade_count,
        final_value=str(m.final_value),
    )


@dataclass(frozen=True, slots=True)
class Constraints:
    min_trades: int = 0
    max_drawdown: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.min_trades, bool) or not isinstance(self.min_trades, int) or self.min_trades < 0:
            raise ObjectiveError(
                "min_trades", f"min_trades must be a whole number of 0 or more, got {self.min_trades!r}"
            )
        if self.max_drawdown is not None and not (
            isinstance(self.max_drawdown, (int, float)) and 0 < self.max_drawdown <= 1
        ):
            raise ObjectiveError(
                "max_drawdown", f"max_drawdown must be a fraction in (0, 1], got {self.max_drawdown!r}"
            )

    def violations(self, metrics: TrialMetrics) -> dict[str, float]:
        """Optuna's constraint values: above 0 where a rule is broken, by how much relative to
        its limit; 0 or below where it holds."""
        out = {}
        if self.min_trades:
            out["min_trades"] = (self.min_trades - metrics.trade_count) / self.min_trades
        if self.max_drawdown is not None:
            out["max_drawdown"] = (metrics.max_drawdown - self.max_drawdown) / self.max_drawdown
        return out

    def reason(self, metrics: TrialMetrics) -> str | None:
        """Why the trial is infeasible, or None."""
        broken = []
        if metrics.trade_count < self.min_trades:
            broken.append(f"{metrics.trade_count} trades, fewer than the {self.min_trades} required")
        if self.max_drawdown is not None and metrics.max_drawdown > self.max_drawdown:
            broken.append(
                f"max drawdown {metrics.max_drawdown:.2%} above the {self.max_drawdown:.2%} allowed"
            )
        return "; ".join(broken) or None

    def to_json(self) -> dict[str, Any]:
        return {"min_trades": self.min_trades, "max_drawdown": self.max_drawdown}
