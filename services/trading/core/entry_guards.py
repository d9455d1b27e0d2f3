"""Portfolio-level gates on new entries (seed task 13.1, properties 16 and 18).

- Declining positions: when more than half of the open positions are down more than 2% from
  entry, new entries halt; the book is telling us the market is against us (requirement 7.5).
- Open-position limit: a new ticker is refused once `max_open_positions` (default 10) are
  open; adding to a ticker already held opens nothing and is not refused here (the position
  and sector caps of the sizer govern it).

Each guard answers allowed-or-not with a reason a human can read in the decision trace.
Exits are never gated here. `new_entry_block_reason` chains these guards after the trading
window and circuit breakers: the one sequence of gates every new entry, normal or micro, meets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.trading.core import circuit_breaker, trading_window
from services.trading.core.models import CircuitBreakerState, OpenPosition

DECLINE_THRESHOLD = Decimal("0.02")
MAX_DECLINING_FRACTION = Decimal("0.5")
MAX_OPEN_POSITIONS = 10


@dataclass(frozen=True, slots=True)
class GuardResult:
    allowed: bool
    reason: str
    guard: str


def is_declining(position: OpenPosition, threshold: Decimal = DECLINE_THRESHOLD) -> bool:
    """Down strictly more than `threshold` from entry (unrealized P&L below -2% by default)."""
    if position.entry_price <= 0:
        return False
    return position.current_price - position.entry_price < -threshold * position.entry_price


def check_declining_positions(
    positions: Sequence[OpenPosition],
    *,
    threshold: Decimal = DECLINE_THRESHOLD,
    max_declining_fraction: Decimal = MAX_DECLINING_FRACTION,
) -> GuardResult:
    """Property 16: halt new entries when more than half of the positions are declining."""
    declining = [p.ticker for p in positions if is_declining(p, threshold)]
    total = len(positions)
    # Compare counts, not a rounded fraction: 5 of 10 is exactly half and still allowed.
    if total and len(declining) > max_declining_fraction * total:
        return GuardResult(
            False,
            f"{len(declining)} of {total} open positions are down more than {threshold:%} "
            f"({', '.join(sorted(declining))}): more than {max_declining_fraction:%} declining, "
            "new entries halted",
            "declining_positions",
        )
    return GuardResult(
        True,
        f"{len(declining)} of {total} open positions down more than {threshold:%} "
        f"(halt above {max_declining_fraction:%})",
        "declining_positions",
    )


def check_max_open_positions(
    positions: Sequence[OpenPosition],
    candidate: str,
    *,
    max_open_positions: int = MAX_OPEN_POSITIONS,
) -> GuardResult:
    """Property 18: refuse a new ticker when the open-position limit is reached."""
    held = {p.ticker for p in positions}
    if candidate in held:
        return GuardResult(
            True, f"{candidate} is already held: adding opens no new position", "max_open_positions"
        )
    if len(held) >= max_open_positions:
        return GuardResult(
            False,
            f"{len(held)} positions open, at the limit of {max_open_positions}: no new position in {candidate}",
            "max_open_positions",
        )
    return GuardResult(True, f"{len(held)} of {max_open_positions} positions open", "max_open_positions")


def new_entry_block_reason(
    ticker: str,
    portfolio_positions: Sequence[OpenPosition],
    breakers: CircuitBreakerState,
    now: datetime,
    *,
    max_open_positions: int,
    checks: list[str],
) -> str | None:
    """The gates every new entry passes, normal or micro, in order: trading window, circuit
    breakers and ticker cooldowns, declining positions, open-position limit. Returns the
    reason to refuse, or None; each gate passed is appended to `checks` for the trace."""
    if not trading_window.is_within_trading_window(now):
        return f"{now.isoformat()} is outside the trading window"
    checks.append("inside the trading window")
    blocked = circuit_breaker.entry_block_reason(breakers, ticker, now)
    if blocked:
        return blocked
    checks.append("no circuit breaker or ticker cooldown")
    for guard in (
        check_declining_positions(portfolio_positions),
        check_max_open_positions(portfolio_positions, ticker, max_open_positions=max_open_positions),
    ):
        if not guard.allowed:
            return guard.reason
        checks.append(guard.reason)
    return None
