"""Moving between risk tiers on evidence (seed task 9.1, docs/contracts.md section 5).

Evaluated at market close: downgrade one level when the trailing-30-day win rate is below
40% or drawdown above 15%; upgrade one level when win rate is above 55% and the Reserve Pool
holds more than 20% of total value and drawdown is below 5%. Never below conservative nor
above aggressive. Returns the `risk_tier_history` record to persist, or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.shared.schemas import RISK_TIER_ORDER, RiskTierName
from services.trading.core.models import PerformanceMetrics
from services.trading.core.trading_window import require_aware


@dataclass(frozen=True, slots=True)
class RiskTierSettings:
    downgrade_win_rate_below: float = 0.40
    downgrade_drawdown_above: float = 0.15
    upgrade_win_rate_above: float = 0.55
    upgrade_reserve_above: float = 0.20
    upgrade_drawdown_below: float = 0.05


@dataclass(frozen=True, slots=True)
class RiskTierChange:
    """One `risk_tier_history` row."""

    previous_tier: RiskTierName
    new_tier: RiskTierName
    trigger_source: str
    reason: str
    changed_at: datetime
    trigger_metrics: Mapping[str, float | None] = field(default_factory=dict)


def _step(tier: RiskTierName, by: int) -> RiskTierName | None:
    index = RISK_TIER_ORDER.index(tier) + by
    return RISK_TIER_ORDER[index] if 0 <= index < len(RISK_TIER_ORDER) else None


def evaluate_risk_tier(
    current: RiskTierName,
    *,
    win_rate: float | None,
    drawdown: float,
    reserve_pct: float,
    now: datetime,
    settings: RiskTierSettings | None = None,
    trigger_source: str = "market_close",
) -> RiskTierChange | None:
    """The tier change the metrics call for, or None.

    `win_rate` is over closed trades of the trailing 30 days; None when there were none, in
    which case only the drawdown rule can act (no trades is no evidence of losing).
    `drawdown` is the current drawdown from peak as a positive fraction; `reserve_pct` is
    Reserve Pool / total value.
    """
    s = settings or RiskTierSettings()
    require_aware(now, "now")
    metrics = {"win_rate": win_rate, "drawdown": drawdown, "reserve_pct": reserve_pct}
    reasons = []
    if win_rate is not None and win_rate < s.downgrade_win_rate_below:
        reasons.append(f"30-day win rate {win_rate:.2%} < {s.downgrade_win_rate_below:.0%}")
    if drawdown > s.downgrade_drawdown_above:
        reasons.append(f"drawdown {drawdown:.2%} > {s.downgrade_drawdown_above:.0%}")
    if reasons:
        target, reason = _step(current, -1), "downgrade: " + " and ".join(reasons)
    elif (
        win_rate is not None
        and win_rate > s.upgrade_win_rate_above
        and reserve_pct > s.upgrade_reserve_above
        and drawdown < s.upgrade_drawdown_below
    ):
        target = _step(current, +1)
        reason = (
            f"upgrade: 30-day win rate {win_rate:.2%} > {s.upgrade_win_rate_above:.0%}, reserve "
            f"{reserve_pct:.2%} > {s.upgrade_reserve_above:.0%}, drawdown {drawdown:.2%} < "
            f"{s.upgrade_drawdown_below:.0%}"
        )
    else:
        return None
    if target is None:  # already at the bound the rule points past
        return None
    return RiskTierChange(current, target, trigger_source, reason, now, metrics)


def evaluate_from_metrics(
    current: RiskTierName,
    metrics: PerformanceMetrics,
    *,
    trailing_win_rate: float | None,
    now: datetime,
    settings: RiskTierSettings | None = None,
) -> RiskTierChange | None:
    """`evaluate_risk_tier` fed from a metrics snapshot: current drawdown and Reserve Pool
    share of total value. The trailing-30-day win rate is passed separately because the
    snapshot's win rate covers all trades."""
    total = metrics.total_portfolio_value
    reserve_pct = float(metrics.reserve_pool / total) if total > 0 else 0.0
    return evaluate_risk_tier(
        current,
        win_rate=trailing_win_rate,
        drawdown=metrics.current_drawdown,
        reserve_pct=reserve_pct,
        now=now,
        settings=settings,
    )
