"""Circuit breakers (seed task 8, properties 13 and 14; docs/contracts.md section 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import CircuitBreakerTriggerType
from services.trading.core import trading_window
from services.trading.core.circuit_breaker import (
    check_daily_loss,
    check_single_position,
    check_volatility,
    entry_block_reason,
    is_active,
    is_ticker_cooled_down,
    is_ticker_in_cooldown,
    resolve_expired,
)
from services.trading.core.models import CircuitBreakerState, OpenPosition

D = Decimal
NY = ZoneInfo("America/New_York")
CLEAR = CircuitBreakerState()
instants = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2030, 6, 1), timezones=st.just(UTC)
)


def decimals(lo: str, hi: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=D(lo), max_value=D(hi), places=places, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(decimals("100", "1000000", 2), decimals("0", "1.2", 4), instants)
def test_property_13_daily_loss(start: Decimal, ratio: Decimal, now: datetime) -> None:
    """Property 13 (daily loss): trips iff the loss exceeds 3% of start-of-day value, and
    halts every new order until the calendar's next session open."""
    current = start * ratio
    check = check_daily_loss(CLEAR, start, current, now)
    if (start - current) / start > D("0.03"):
        assert check.event is not None and check.event.trigger_type is CircuitBreakerTriggerType.DAILY_LOSS
        cal = trading_window.xnys_calendar()
        expected = cal.next_open(pd.Timestamp(now))  # the calendar's own answer
        assert pd.Timestamp(check.state.cooldown_expires) == expected
        assert is_active(check.state, now)
        assert entry_block_reason(check.state, "ANY", now)
        assert not is_active(check.state, check.state.cooldown_expires)
    else:
        assert check.event is None and check.state == CLEAR and check.reason


@settings(max_examples=200, deadline=None)
@given(decimals("1", "1000", 2), decimals("0.5", "1.5", 4), instants)
def test_property_13_single_position(entry: Decimal, ratio: Decimal, now: datetime) -> None:
    """Property 13 (single position): more than 8% below entry closes the position and
    blocks its ticker, and only its ticker, for 24 hours."""
    position = OpenPosition("XYZ", D(10), entry, entry * ratio, "Tech", entry * D("0.5"), entry * 2, D("0.7"))
    check = check_single_position(CLEAR, position, now)
    if (entry - entry * ratio) / entry > D("0.08"):
        assert check.close_ticker == "XYZ" and check.event is not None and check.event.ticker == "XYZ"
        assert check.state.ticker_cooldowns["XYZ"] == now + timedelta(hours=24)
        assert is_ticker_in_cooldown(check.state, "XYZ", now + timedelta(hours=23, minutes=59, seconds=59))
        assert is_ticker_cooled_down(check.state, "XYZ", now + timedelta(hours=24))
        assert (
            entry_block_reason(check.state, "XYZ", now)
            and entry_block_reason(check.state, "ABC", now) is None
        )
        assert not is_active(check.state, now)
    else:
        assert check.close_ticker is None and check.event is None and check.state == CLEAR


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 120 * 60), max_size=8), instants)
def test_property_13_volatility(seconds_ago: list[int], now: datetime) -> None:
    """Property 13 (volatility): 3+ stop-outs within the last 30 minutes halt new orders
    for 60 minutes; fewer do not."""
    stop_outs = [now - timedelta(seconds=s) for s in seconds_ago]
    check = check_volatility(CLEAR, stop_outs, now)
    if sum(1 for s in seconds_ago if s <= 30 * 60) >= 3:
        assert check.event is not None and check.event.trigger_type is CircuitBreakerTriggerType.VOLATILITY
        assert check.state.cooldown_expires == now + timedelta(minutes=60)
        assert entry_block_reason(check.state, "ANY", now + timedelta(minutes=59, seconds=59))
        assert entry_block_reason(check.state, "ANY", now + timedelta(minutes=60)) is None
    else:
        assert check.event is None and not is_active(check.state, now)


@settings(max_examples=300, deadline=None)
@given(instants, st.integers(1, 3 * 24 * 3600), st.integers(-3 * 24 * 3600, 6 * 24 * 3600))
def test_property_14_cooldown_expiry(triggered: datetime, cooldown_s: int, elapsed_s: int) -> None:
    """Property 14: active before triggered_at + cooldown, resolved from that instant on."""
    expires = triggered + timedelta(seconds=cooldown_s)
    state = CircuitBreakerState(
        active=True,
        trigger_type=CircuitBreakerTriggerType.VOLATILITY,
        triggered_at=triggered,
        cooldown_expires=expires,
        ticker_cooldowns={"XYZ": expires},
    )
    now = triggered + timedelta(seconds=elapsed_s)
    resolved, records = resolve_expired(state, now)
    if now >= expires:
        assert not resolved.active and not is_active(resolved, now) and resolved.ticker_cooldowns == {}
        assert {r.ticker for r in records} == {None, "XYZ"} and all(r.resolved_at == now for r in records)
    else:
        assert resolved == state and records == ()
        assert is_active(state, now) and is_ticker_in_cooldown(state, "XYZ", now)


def test_cooldown_expires_to_the_second() -> None:
    triggered = datetime(2024, 6, 3, 15, 0, 0, tzinfo=UTC)
    check = check_volatility(CLEAR, [triggered - timedelta(minutes=m) for m in (0, 10, 30)], triggered)
    assert check.event is not None
    one_second_early = datetime(2024, 6, 3, 15, 59, 59, tzinfo=UTC)
    assert is_active(check.state, one_second_early)
    assert resolve_expired(check.state, one_second_early)[0] == check.state
    on_the_second = datetime(2024, 6, 3, 16, 0, 0, tzinfo=UTC)
    assert not is_active(check.state, on_the_second)
    resolved, records = resolve_expired(check.state, on_the_second)
    assert not resolved.active and len(records) == 1


def test_daily_loss_before_a_half_day_and_holiday_resumes_next_session() -> None:
    wednesday_close = datetime(2024, 11, 27, 15, 0, tzinfo=NY)  # Thursday is Thanksgiving
    check = check_daily_loss(CLEAR, D("10000"), D("9699"), wednesday_close)
    assert check.state.cooldown_expires == datetime(2024, 11, 29, 9, 30, tzinfo=NY)
    assert check_daily_loss(CLEAR, D("10000"), D("9700"), wednesday_close).event is None  # exactly 3%


def test_longer_halt_is_not_shortened() -> None:
    now = datetime(2024, 6, 3, 15, 0, tzinfo=UTC)
    daily = check_daily_loss(CLEAR, D("100"), D("90"), now).state
    volatile = check_volatility(daily, [now] * 3, now)
    assert volatile.event is not None  # recorded
    assert volatile.state.cooldown_expires == daily.cooldown_expires
    assert volatile.state.trigger_type is CircuitBreakerTriggerType.DAILY_LOSS


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        is_active(CLEAR, datetime(2024, 6, 3, 15, 0))
