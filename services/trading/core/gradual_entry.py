"""Gradual entry: buying a position in tranches over time (seed task 12.2).

Seed 12.2: use gradual entry when the position exceeds min($30, 5% of Active Pool) (docs/contracts.md
section 5: threshold $30, 3 tranches, 30 minutes apart). The split gives tranche sizes that
differ by at most one share and sum to the whole, never a zero-share tranche (fewer
tranches when there are fewer shares than tranches). All tranches carry the parent decision
id. The plan is plain frozen data; the engine re-evaluates before each submission and
cancels the rest, with a reason, when conditions deteriorate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from services.trading.core.trading_window import require_aware


@dataclass(frozen=True, slots=True)
class GradualEntrySettings:
    threshold_dollars: Decimal = Decimal("30")
    threshold_active_pool_pct: Decimal = Decimal("0.05")
    tranche_count: int = 3
    tranche_spacing: timedelta = timedelta(minutes=30)


class TrancheStatus(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Tranche:
    """One slice of a gradual entry; `index` counts from 1 to `count` (docs/contracts.md section 4's
    `tranche: {index, count, parent_decision_id}`)."""

    index: int
    count: int
    parent_decision_id: str
    quantity: Decimal
    scheduled_at: datetime
    status: TrancheStatus = TrancheStatus.PENDING


@dataclass(frozen=True, slots=True)
class GradualEntryPlan:
    parent_decision_id: str
    ticker: str
    tranches: tuple[Tranche, ...]
    cancel_reason: str | None = None

    @property
    def pending(self) -> tuple[Tranche, ...]:
        return tuple(t for t in self.tranches if t.status is TrancheStatus.PENDING)

    def due(self, now: datetime) -> tuple[Tranche, ...]:
        """Pending tranches whose time has come, oldest first."""
        require_aware(now, "now")
        return tuple(t for t in self.pending if t.scheduled_at <= now)

    @property
    def is_complete(self) -> bool:
        return not self.pending


def gradual_entry_threshold(active_pool: Decimal, settings: GradualEntrySettings | None = None) -> Decimal:
    s = settings or GradualEntrySettings()
    return min(s.threshold_dollars, s.threshold_active_pool_pct * active_pool)


def should_use_gradual_entry(
    position_dollars: Decimal, active_pool: Decimal, settings: GradualEntrySettings | None = None
) -> bool:
    """True when the position exceeds min($30, 5% of Active Pool) (seed 12.2, read literally)."""
    return position_dollars > gradual_entry_threshold(active_pool, settings)


def split_into_tranches(
    total_shares: Decimal | int,
    parent_decision_id: str,
    first_at: datetime,
    settings: GradualEntrySettings | None = None,
    share_step: Decimal = Decimal(1),
) -> tuple[Tranche, ...]:
    """Split a share count into up to `tranche_count` tranches `tranche_spacing` apart, in
    units of `share_step` (1: whole shares; 0.0001 with fractional shares on). Earlier
    tranches take the remainder, so sizes are non-increasing and differ by at most one step."""
    s = settings or GradualEntrySettings()
    require_aware(first_at, "first_at")
    if share_step <= 0:
        raise ValueError(f"share step must be positive, got {share_step}")
    units = Decimal(total_shares) / share_step
    if units <= 0 or units != units.to_integral_value():
        raise ValueError(
            f"gradual entry splits a positive number of {share_step}-share steps, got {total_shares}"
        )
    if s.tranche_count < 1:
        raise ValueError(f"tranche count must be at least 1, got {s.tranche_count}")
    count = min(s.tranche_count, int(units))
    base, remainder = divmod(int(units), count)
    return tuple(
        Tranche(
            i + 1,
            count,
            parent_decision_id,
            (base + (1 if i < remainder else 0)) * share_step,
            first_at + s.tranche_spacing * i,
        )
        for i in range(count)
    )


def plan_entry(
    parent_decision_id: str,
    ticker: str,
    total_shares: Decimal | int,
    price: Decimal,
    active_pool: Decimal,
    now: datetime,
    settings: GradualEntrySettings | None = None,
    share_step: Decimal = Decimal(1),
) -> GradualEntryPlan:
    """A plan for one buy decision: tranches above the threshold, one order below it."""
    s = settings or GradualEntrySettings()
    if not should_use_gradual_entry(Decimal(total_shares) * price, active_pool, s):
        s = replace(s, tranche_count=1)
    return GradualEntryPlan(
        parent_decision_id, ticker, split_into_tranches(total_shares, parent_decision_id, now, s, share_step)
    )


def mark_submitted(plan: GradualEntryPlan, index: int) -> GradualEntryPlan:
    """The plan with tranche `index` submitted; only a pending tranche can be submitted."""
    tranche = next((t for t in plan.tranches if t.index == index), None)
    if tranche is None or tranche.status is not TrancheStatus.PENDING:
        state = "missing" if tranche is None else tranche.status
        raise ValueError(f"tranche {index} of decision {plan.parent_decision_id} is {state}, not pending")
    return replace(
        plan,
        tranches=tuple(
            replace(t, status=TrancheStatus.SUBMITTED) if t.index == index else t for t in plan.tranches
        ),
    )


def cancel_remaining(plan: GradualEntryPlan, reason: str) -> GradualEntryPlan:
    """Cancel every pending tranche, e.g. when a re-evaluation before submission says no."""
    if not reason:
        raise ValueError("cancelling tranches needs a reason for the decision trace")
    return replace(
        plan,
        cancel_reason=reason,
        tranches=tuple(
            replace(t, status=TrancheStatus.CANCELLED) if t.status is TrancheStatus.PENDING else t
            for t in plan.tranches
        ),
    )
