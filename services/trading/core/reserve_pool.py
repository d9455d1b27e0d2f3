"""The Reserve Pool: profit set aside, released only in an emergency (seed task 7.1).

docs/contracts.md sections 5-6: a profitable close moves `profit * reserve_siphon_pct` (default 20%) into
the reserve; `active_pool = total_value - reserve`; a drawdown beyond the emergency threshold
(default 20%) releases the whole reserve and sets the risk tier to conservative; a reserve
above 30% of total value raises a high-water signal. Each change comes back with the
`reserve_pool_ledger` entry to persist; loading and storing are the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.shared.schemas import ReservePoolTriggerType, RiskTierName
from services.trading.core.models import ZERO, ReservePoolState
from services.trading.core.trading_window import require_aware


@dataclass(frozen=True, slots=True)
class ReserveSettings:
    reserve_siphon_pct: Decimal = Decimal("0.20")
    emergency_drawdown_threshold_pct: Decimal = Decimal("0.20")
    reserve_high_water_pct: Decimal = Decimal("0.30")


@dataclass(frozen=True, slots=True)
class ReserveLedgerEntry:
    """One `reserve_pool_ledger` row: signed amount (into the reserve is positive)."""

    amount: Decimal
    balance_after: Decimal
    trigger_type: ReservePoolTriggerType
    notes: str
    created_at: datetime
    reference_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReserveUpdate:
    """The reserve after a rule ran. `entry` is None when the balance did not change, and
    `reason` then says why; `new_risk_tier` is set when the rule forces a tier."""

    state: ReservePoolState
    entry: ReserveLedgerEntry | None
    reason: str
    new_risk_tier: RiskTierName | None = None


def compute_active_pool(total_value: Decimal, reserve_balance: Decimal) -> Decimal:
    """Active Pool = total portfolio value - Reserve Pool balance (docs/contracts.md section 6)."""
    return total_value - reserve_balance


def siphon_profit(
    state: ReservePoolState,
    realized_profit: Decimal,
    now: datetime,
    settings: ReserveSettings | None = None,
    reference_id: str | None = None,
) -> ReserveUpdate:
    """Move `realized_profit * reserve_siphon_pct` into the reserve after a profitable close.
    Not rounded to cents: the reserve is an allocation of the account, not a cash transfer."""
    s = settings or ReserveSettings()
    require_aware(now, "now")
    if realized_profit <= 0:
        return ReserveUpdate(state, None, f"realized P&L {realized_profit} is not a profit: nothing siphoned")
    amount = realized_profit * s.reserve_siphon_pct
    if amount <= 0:
        return ReserveUpdate(state, None, f"siphon rate {s.reserve_siphon_pct} moves nothing")
    balance = state.balance + amount
    note = f"{s.reserve_siphon_pct} of realized profit {realized_profit} moved to the Reserve Pool"
    return ReserveUpdate(
        ReservePoolState(balance, state.total_deposits + amount, state.total_withdrawals, now),
        ReserveLedgerEntry(amount, balance, ReservePoolTriggerType.PROFIT_SIPHON, note, now, reference_id),
        note,
    )


def emergency_release(
    state: ReservePoolState, drawdown: Decimal | float, now: datetime, settings: ReserveSettings | None = None
) -> ReserveUpdate:
    """When drawdown exceeds the emergency threshold, release the whole reserve into the
    Active Pool and force the conservative tier. `drawdown` is a positive fraction from peak."""
    s = settings or ReserveSettings()
    require_aware(now, "now")
    drawdown = Decimal(str(drawdown)) if isinstance(drawdown, float) else drawdown
    if not drawdown > s.emergency_drawdown_threshold_pct:
        return ReserveUpdate(
            state,
            None,
            f"drawdown {drawdown} is within the emergency threshold "
            f"{s.emergency_drawdown_threshold_pct}: reserve kept",
        )
    note = (
        f"drawdown {drawdown} exceeds the emergency threshold {s.emergency_drawdown_threshold_pct}: "
        f"Reserve Pool of {state.balance} released to the Active Pool; risk tier set to conservative"
    )
    if state.balance <= 0:
        return ReserveUpdate(state, None, note, RiskTierName.CONSERVATIVE)
    released = state.balance
    return ReserveUpdate(
        ReservePoolState(ZERO, state.total_deposits, state.total_withdrawals + released, now),
        ReserveLedgerEntry(-released, ZERO, ReservePoolTriggerType.EMERGENCY_LIQUIDATION, note, now),
        note,
        RiskTierName.CONSERVATIVE,
    )


def reserve_high_water(
    reserve_balance: Decimal, total_value: Decimal, settings: ReserveSettings | None = None
) -> str | None:
    """A notice when the reserve holds more than 30% of total value (the owner may want to
    withdraw or rebalance), else None."""
    s = settings or ReserveSettings()
    if total_value > 0 and reserve_balance > s.reserve_high_water_pct * total_value:
        return (
            f"Reserve Pool {reserve_balance} is above {s.reserve_high_water_pct} of total value {total_value}"
        )
    return None


def emergency_crossed(
    previous_drawdown: Decimal | None, drawdown: Decimal, settings: ReserveSettings | None = None
) -> bool:
    """True on the first session whose drawdown is beyond the emergency threshold after one
    that was not (or after none): the owner is alerted once per crossing, not every session
    the account stays down, even when the reserve is already empty."""
    s = settings or ReserveSettings()
    beyond = drawdown > s.emergency_drawdown_threshold_pct
    return beyond and not (
        previous_drawdown is not None and previous_drawdown > s.emergency_drawdown_threshold_pct
    )
