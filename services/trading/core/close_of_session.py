"""The close of a session (seed tasks 7.1, 11.1, docs/contracts.md sections 5 and 6): the emergency
drawdown rule, then the risk tier, in that order, on the session's own snapshot figures.

The emergency rule releases the Reserve Pool into the Active Pool and forces the conservative
tier when drawdown is beyond its threshold; its tier wins for the session (the usual tier
rule is not run on top of it: the next close evaluates as usual). Otherwise the tier rule
reads the trailing-30-day win rate of standard trades only: micro-trades follow their own
rules and are reported on their own, so they neither prop up nor drag down the tier.

Pure: the live engine persists the outcome in the close's transaction; the backtest applies
it to its book in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.shared.schemas import RiskTierName
from services.trading.core import performance_tracker, reserve_pool, risk_tier_controller
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import ClosedTrade, ReservePoolState
from services.trading.core.reserve_pool import ReserveUpdate
from services.trading.core.risk_tier_controller import RiskTierChange

WIN_RATE_WINDOW = timedelta(
    days=30
)  # the tier reads the trailing-30-day win rate (docs/contracts.md section 5)


@dataclass(frozen=True, slots=True)
class CloseFigures:
    """The session's snapshot figures: both rules read these and nothing else.
    `drawdown` is the current drawdown from peak, a positive fraction."""

    total_value: Decimal
    drawdown: float
    reserve: ReservePoolState


@dataclass(frozen=True, slots=True)
class SessionCloseOutcome:
    """What the close decided, to persist (live) or apply (backtest). `release.entry` is set
    when the reserve was released, `release.new_risk_tier` when the emergency rule fired."""

    release: ReserveUpdate
    tier_change: RiskTierChange | None

    @property
    def tier(self) -> RiskTierName | None:
        return None if self.tier_change is None else self.tier_change.new_tier


def trailing_win_rate(trades: Iterable[ClosedTrade], now: datetime) -> float | None:
    """Win rate of the standard trades closed in the last 30 days; None when there were none."""
    since = now - WIN_RATE_WINDOW
    recent = [t for t in trades if t.exit_at >= since and not t.is_micro_trade]
    return performance_tracker.win_rate(recent) if recent else None


def close_session(
    figures: CloseFigures,
    closed_trades: Iterable[ClosedTrade],
    current_tier: RiskTierName,
    now: datetime,
    settings: EngineSettings,
) -> SessionCloseOutcome:
    """Emergency release, then the tier change, on the same figures (see the module doc)."""
    release = reserve_pool.emergency_release(
        figures.reserve, Decimal(str(figures.drawdown)), now, settings.reserve
    )
    if release.new_risk_tier is not None:
        if release.new_risk_tier is current_tier:
            return SessionCloseOutcome(release, None)
        change = RiskTierChange(
            current_tier,
            release.new_risk_tier,
            "emergency_liquidation",
            release.reason,
            now,
            {"drawdown": figures.drawdown},
        )
        return SessionCloseOutcome(release, change)
    total = figures.total_value
    change = risk_tier_controller.evaluate_risk_tier(
        current_tier,
        win_rate=trailing_win_rate(closed_trades, now),
        drawdown=figures.drawdown,
        reserve_pct=float(figures.reserve.balance / total) if total > 0 else 0.0,
        now=now,
    )
    return SessionCloseOutcome(release, change)
