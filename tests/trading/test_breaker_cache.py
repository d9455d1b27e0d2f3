"""The circuit breakers' Redis mirror (seed task 8.1): what is read back is what was folded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from services.shared.schemas import CircuitBreakerTriggerType
from services.trading.core.models import CircuitBreakerState
from services.trading.live.breaker_cache import decode, encode

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
states = st.builds(
    CircuitBreakerState,
    active=st.booleans(),
    trigger_type=st.none() | st.sampled_from(list(CircuitBreakerTriggerType)),
    triggered_at=st.none() | instants,
    cooldown_expires=st.none() | instants,
    ticker_cooldowns=st.dictionaries(
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ.", min_size=1, max_size=6), instants, max_size=5
    ),
)


@given(states, instants)
def test_the_mirror_round_trips_every_breaker_state(state: CircuitBreakerState, as_of: datetime) -> None:
    mirrored = decode(encode(state, as_of))
    assert mirrored.state == state and mirrored.as_of == as_of


def test_times_keep_their_instant_across_time_zones() -> None:
    new_york = timezone(timedelta(hours=-5))
    halt = datetime(2024, 3, 5, 10, 0, tzinfo=new_york)
    mirrored = decode(encode(CircuitBreakerState(active=True, cooldown_expires=halt), halt))
    assert mirrored.state.cooldown_expires == halt == datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
