"""The close of a session (seed tasks 7.1, 11.1, docs/contracts.md sections 5 and 6): the emergency
drawdown rule, then the risk tier, in that order, on the session's own snapshot figures.

The emergency rule releases the Reserve Pool into the Active Pool and forces the conservative
tier when drawdown is beyond its threshold; its tier wins for the session (the usual tier
rule is not run on top of it: the next close evaluates as usual). Otherwise the tier's
controller (`risk_tier_controller.judge`) gives its verdict, changed or held, reading the win
rate of standard trades only: micro-trades follow their own rules and are reported on their
own, so they neither prop up nor drag down the tier.

Pure: the live engine persists the outcome in the close's transaction; the backtest applies
it to its book in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.shared.schemas import RiskTierName
from services.trading.core import reserve_pool, risk_tier_controller
from services.trading.core.engine_settings import EngineSettings
from services.trading.core.models import ClosedTrade, ReservePoolState
from services.trading.core.reserve_pool import ReserveUpdate
from services.trading.core.risk_tier_controller import (
    WIN_RATE_WINDOW,
    CloseEvidence,
    RiskTierChange,
    TierMemory,
    keep_for_judging,
)

__all__ = ["WIN_RATE_WINDOW", "CloseFigures", "SessionCloseOutcome", "close_session", "keep_for_judging"]


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
    when the reserve was released, `release.new_risk_tier` when the emergency rule fired.
    `verdict` is the tier's verdict of the close, changed or held, with the controller's
    memory after it (`verdict.memory`): the caller keeps that memory for the next close."""

    release: ReserveUpdate
    verdict: RiskTierChange

    @property
    def tier_change(self) -> RiskTierChange | None:
        return self.verdict if self.verdict.changed else None

    @property
    def tier(self) -> RiskTierName | None:
        return None if self.tier_change is None else self.tier_change.new_tier

    @property
    def memory(self) -> TierMemory:
        assert self.verdict.memory is not None  # every verdict of a close carries one
        return self.verdict.memory


def close_session(
    figures: CloseFigures,
    closed_trades: Iterable[ClosedTrade],
    current_tier: RiskTierName,
    now: datetime,
    settings: EngineSettings,
    memory: TierMemory | None = None,
) -> SessionCloseOutcome:
    """Emergency release, then the tier's verdict, on the same figures (see the module doc).
    `memory` is the controller's memory from the previous close (None: nothing on record)."""
    memory = memory or TierMemory()
    release = reserve_pool.emergency_release(
        figures.reserve, Decimal(str(figures.drawdown)), now, settings.reserve
    )
    if release.new_risk_tier is not None:
        return SessionCloseOutcome(release, _emergency_verdict(figures, release, current_tier, now, memory))
    evidence = CloseEvidence(
        tuple(closed_trades), figures.total_value, figures.drawdown, figures.reserve.balance
    )
    verdict = risk_tier_controller.judge(current_tier, evidence, memory, now, settings.tier_rules)
    return SessionCloseOutcome(release, verdict)


def _emergency_verdict(
    figures: CloseFigures, release: ReserveUpdate, current: RiskTierName, now: datetime, memory: TierMemory
) -> RiskTierChange:
    """The emergency rule's tier, as a change or (already there) a held verdict. It is a
    downgrade trigger: the quiet sessions toward recovery start again."""
    forced = release.new_risk_tier
    assert forced is not None
    ceiling = memory.ceiling or current
    peak = max(
        risk_tier_controller.peak_since(memory, figures.total_value, figures.drawdown), figures.total_value
    )
    if forced is current:
        after = TierMemory(memory.since, memory.sessions_at_tier + 1, 0, peak, ceiling)
        reason = f"held: emergency drawdown rule in force ({release.reason})"
    else:
        after = memory.after_change(now, figures.total_value, ceiling)
        reason = release.reason
    return RiskTierChange(
        current, forced, "emergency_liquidation", reason, now, {"drawdown": figures.drawdown}, after
    )
