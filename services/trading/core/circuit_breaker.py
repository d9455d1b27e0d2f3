"""Circuit breakers: stop trading when losses or stop-outs pile up (seed task 8.1).

docs/contracts.md section 5 defaults: daily loss above 3% of start-of-day value halts new entries until
the next session opens; a position down more than 8% from entry is closed and its ticker
cooled down for 24 hours; 3 stop-outs within 30 minutes halt entries for 60 minutes. A halt
is resolved once `now >= cooldown_expires`. Each check returns the new state and the
`circuit_breaker_events` record with its reason; persisting and caching are the engine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from services.shared.schemas import CircuitBreakerTriggerType
from services.trading.core.models import CircuitBreakerState, OpenPosition
from services.trading.core.trading_window import next_session_open as calendar_next_session_open
from services.trading.core.trading_window import require_aware


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    daily_loss_pct: Decimal = Decimal("0.03")
    single_position_loss_pct: Decimal = Decimal("0.08")
    ticker_cooldown: timedelta = timedelta(hours=24)
    volatility_stop_outs: int = 3
    volatility_window: timedelta = timedelta(minutes=30)
    volatility_halt: timedelta = timedelta(minutes=60)


@dataclass(frozen=True, slots=True)
class CircuitBreakerEvent:
    """One `circuit_breaker_events` row: what tripped, against which threshold, until when."""

    trigger_type: CircuitBreakerTriggerType
    threshold_value: Decimal
    actual_value: Decimal
    triggered_at: datetime
    cooldown_expires: datetime | None
    reason: str
    ticker: str | None = None


@dataclass(frozen=True, slots=True)
class BreakerResolution:
    """A halt or ticker cooldown that has run out (sets `resolved_at` on its event)."""

    trigger_type: CircuitBreakerTriggerType | None
    resolved_at: datetime
    reason: str
    ticker: str | None = None


@dataclass(frozen=True, slots=True)
class BreakerCheck:
    """Result of one check. `event` is None when nothing tripped (`reason` says why);
    `close_ticker` names a position the engine must close now."""

    state: CircuitBreakerState
    event: CircuitBreakerEvent | None
    reason: str
    close_ticker: str | None = None


def is_active(state: CircuitBreakerState, now: datetime) -> bool:
    """True while a portfolio-wide halt is in force (a manual halt has no expiry)."""
    require_aware(now, "now")
    return state.active and (state.cooldown_expires is None or now < state.cooldown_expires)


def daily_loss_halt_in_force(state: CircuitBreakerState, now: datetime) -> bool:
    """A halt already lasting until the next session opens (a daily-loss halt, or a longer or
    manual one) makes a daily-loss trip redundant; a shorter one (volatility) does not."""
    if not is_active(state, now):
        return False
    expires = state.cooldown_expires
    return expires is None or expires >= calendar_next_session_open(now)


def is_ticker_in_cooldown(state: CircuitBreakerState, ticker: str, now: datetime) -> bool:
    """True while `ticker` may not be re-entered after a single-position breaker."""
    expires = state.ticker_cooldowns.get(ticker)
    return expires is not None and require_aware(now, "now") < expires


def is_ticker_cooled_down(state: CircuitBreakerState, ticker: str, now: datetime) -> bool:
    """True when `ticker` is free to trade: its cooldown (if it had one) has run out."""
    return not is_ticker_in_cooldown(state, ticker, now)


def entry_block_reason(state: CircuitBreakerState, ticker: str, now: datetime) -> str | None:
    """Why a new entry in `ticker` is refused by a breaker, or None when it is allowed."""
    if is_active(state, now):
        until = (
            f"until {state.cooldown_expires.isoformat()}"
            if state.cooldown_expires is not None
            else "until the owner acknowledges the differences with the broker"
            if state.trigger_type == CircuitBreakerTriggerType.RECONCILIATION
            else "until resumed manually"
        )
        return f"circuit breaker {state.trigger_type} active since {state.triggered_at} {until}"
    if is_ticker_in_cooldown(state, ticker, now):
        until = state.ticker_cooldowns[ticker].isoformat()
        return f"{ticker} is cooling down after a single-position loss until {until}"
    return None


def manual_halt(reason: str, now: datetime) -> CircuitBreakerEvent:
    """The owner's own halt ("halt all trading now"): every new entry is refused until the
    owner clears it; it has no expiry, so nothing resolves it by itself. Exits still run, as
    under any breaker: protection never stops."""
    require_aware(now, "now")
    return CircuitBreakerEvent(
        CircuitBreakerTriggerType.MANUAL,
        Decimal(0),
        Decimal(0),
        now,
        None,
        f"halted by the owner: {reason}; new entries halted until the owner clears it",
    )


def _trip(
    state: CircuitBreakerState, kind: CircuitBreakerTriggerType, now: datetime, expires: datetime
) -> CircuitBreakerState:
    """Activate a halt; a halt already in force that lasts longer (or indefinitely) wins."""
    if is_active(state, now) and (state.cooldown_expires is None or state.cooldown_expires >= expires):
        return state
    return replace(state, active=True, trigger_type=kind, triggered_at=now, cooldown_expires=expires)


def check_daily_loss(
    state: CircuitBreakerState,
    start_of_day_value: Decimal,
    current_value: Decimal,
    now: datetime,
    *,
    next_session_open: datetime | None = None,
    settings: BreakerSettings | None = None,
) -> BreakerCheck:
    """Halt until the next session opens when the day's loss exceeds 3% of start-of-day value.
    `next_session_open` defaults to the XNYS calendar's first open after `now`."""
    s = settings or BreakerSettings()
    require_aware(now, "now")
    if start_of_day_value <= 0:
        return BreakerCheck(
            state, None, f"start-of-day value {start_of_day_value} is not positive: no daily loss rule"
        )
    loss = (start_of_day_value - current_value) / start_of_day_value
    if not loss > s.daily_loss_pct:
        return BreakerCheck(state, None, f"daily loss {loss:.4f} within {s.daily_loss_pct}")
    resume = next_session_open or calendar_next_session_open(now)
    reason = (
        f"portfolio down {loss:.2%} from start-of-day {start_of_day_value} (limit {s.daily_loss_pct:.0%}): "
        f"new entries halted until the next session opens at {resume.isoformat()}"
    )
    event = CircuitBreakerEvent(
        CircuitBreakerTriggerType.DAILY_LOSS, s.daily_loss_pct, loss, now, resume, reason
    )
    return BreakerCheck(_trip(state, CircuitBreakerTriggerType.DAILY_LOSS, now, resume), event, reason)


def check_single_position(
    state: CircuitBreakerState, position: OpenPosition, now: datetime, settings: BreakerSettings | None = None
) -> BreakerCheck:
    """Close a position down more than 8% from entry and cool its ticker down for 24 hours."""
    s = settings or BreakerSettings()
    require_aware(now, "now")
    loss = (position.entry_price - position.current_price) / position.entry_price
    if not loss > s.single_position_loss_pct:
        return BreakerCheck(
            state, None, f"{position.ticker} down {loss:.4f} from entry, within {s.single_position_loss_pct}"
        )
    expires = now + s.ticker_cooldown
    reason = (
        f"{position.ticker} down {loss:.2%} from entry {position.entry_price} (limit "
        f"{s.single_position_loss_pct:.0%}): closing it; no re-entry until {expires.isoformat()}"
    )
    cooldowns = dict(state.ticker_cooldowns)
    cooldowns[position.ticker] = max(expires, cooldowns.get(position.ticker, expires))
    event = CircuitBreakerEvent(
        CircuitBreakerTriggerType.SINGLE_POSITION,
        s.single_position_loss_pct,
        loss,
        now,
        expires,
        reason,
        position.ticker,
    )
    return BreakerCheck(
        replace(state, ticker_cooldowns=cooldowns), event, reason, close_ticker=position.ticker
    )


def check_volatility(
    state: CircuitBreakerState,
    stop_out_times: Sequence[datetime],
    now: datetime,
    settings: BreakerSettings | None = None,
) -> BreakerCheck:
    """Halt for 60 minutes when 3 or more stop-outs happened within the last 30 minutes
    (window [now - 30 min, now], both ends included)."""
    s = settings or BreakerSettings()
    require_aware(now, "now")
    since = now - s.volatility_window
    recent = [t for t in stop_out_times if since <= require_aware(t, "stop-out time") <= now]
    if len(recent) < s.volatility_stop_outs:
        return BreakerCheck(state, None, f"{len(recent)} stop-out(s) in the last {s.volatility_window}")
    expires = now + s.volatility_halt
    reason = (
        f"{len(recent)} stop-outs within {s.volatility_window} (limit {s.volatility_stop_outs}): "
        f"new entries halted until {expires.isoformat()}"
    )
    event = CircuitBreakerEvent(
        CircuitBreakerTriggerType.VOLATILITY,
        Decimal(s.volatility_stop_outs),
        Decimal(len(recent)),
        now,
        expires,
        reason,
    )
    return BreakerCheck(_trip(state, CircuitBreakerTriggerType.VOLATILITY, now, expires), event, reason)


def resolve_expired(
    state: CircuitBreakerState, now: datetime
) -> tuple[CircuitBreakerState, tuple[BreakerResolution, ...]]:
    """Clear the halt and ticker cooldowns whose expiry is at or before `now`."""
    require_aware(now, "now")
    resolutions: list[BreakerResolution] = []
    if state.active and state.cooldown_expires is not None and now >= state.cooldown_expires:
        resolutions.append(
            BreakerResolution(
                state.trigger_type,
                now,
                f"{state.trigger_type} halt expired at {state.cooldown_expires.isoformat()}",
            )
        )
        state = replace(state, active=False, trigger_type=None, triggered_at=None, cooldown_expires=None)
    expired = [t for t, expires in state.ticker_cooldowns.items() if now >= expires]
    for ticker in expired:
        resolutions.append(
            BreakerResolution(
                CircuitBreakerTriggerType.SINGLE_POSITION,
                now,
                f"{ticker} cooldown expired at {state.ticker_cooldowns[ticker].isoformat()}",
                ticker,
            )
        )
    if expired:
        state = replace(
            state, ticker_cooldowns={t: e for t, e in state.ticker_cooldowns.items() if t not in expired}
        )
    return state, tuple(resolutions)
