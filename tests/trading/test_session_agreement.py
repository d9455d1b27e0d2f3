"""The stricter of two calendars (core/session_agreement.py), checked minute by minute against
plain statements of the rule: open only where both say open; a broker clock's closed span
closes the sessions it touches, and a session it cuts does not open again that day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core import trading_window
from services.trading.core.session_agreement import (
    ClockDisagreement,
    MarketClock,
    Session,
    clock_of,
    stricter_calendar,
    stricter_session,
    stricter_with_clock,
)

DAY0 = date(2024, 3, 4)
MIDNIGHT = datetime(2024, 3, 4, tzinfo=UTC)
DAYS = 4
# Coarse "minutes" keep the brute-force grid small: a day of 48 steps of 30 minutes.
STEP = timedelta(minutes=30)
STEPS_A_DAY = 48


def _at(day: int, step: int) -> datetime:
    return MIDNIGHT + timedelta(days=day) + step * STEP


@st.composite
def sessions_of_a_day(draw, day: int) -> Session | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None  # a holiday, a quarter of the time
    # Never at midnight: two days' sessions touching would read as one on the grid.
    opens = draw(st.integers(1, STEPS_A_DAY - 2))
    closes = draw(st.integers(opens + 1, STEPS_A_DAY - 1))
    return Session(_at(day, opens), _at(day, closes))


@st.composite
def calendars(draw) -> dict[date, Session]:
    days = {DAY0 + timedelta(days=d): draw(sessions_of_a_day(d)) for d in range(DAYS)}
    return {d: s for d, s in days.items() if s is not None}


def _grid() -> list[datetime]:
    return [_at(0, step) for step in range(DAYS * STEPS_A_DAY)]


def _open(sessions, instant: datetime) -> bool:
    return any(s is not None and s.holds(instant) for s in sessions.values())


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_stricter_session_is_open_exactly_where_both_are(data) -> None:
    a, b = data.draw(sessions_of_a_day(0)), data.draw(sessions_of_a_day(0))
    used = stricter_session(a, b)
    for t in [_at(0, step) for step in range(STEPS_A_DAY + 1)]:
        both = a is not None and a.holds(t) and b is not None and b.holds(t)
        assert (used is not None and used.holds(t)) == both


@settings(max_examples=200, deadline=None)
@given(exchange=calendars(), broker=calendars())
def test_the_stricter_calendar_is_open_where_both_are_and_names_each_day_they_differ(
    exchange, broker
) -> None:
    days = [DAY0 + timedelta(days=d) for d in range(DAYS)]
    agreement = stricter_calendar(exchange, broker, days)
    for t in _grid():
        assert _open(agreement.sessions, t) == (_open(exchange, t) and _open(broker, t))
    differing = [d for d in days if exchange.get(d) != broker.get(d)]
    assert [d.day for d in agreement.disagreements] == differing
    assert set(agreement.sessions) == set(days)


def _brute_force_clock(sessions: dict[date, Session], at: datetime) -> MarketClock:
    """A clock read off the grid, step by step (another way to say what `clock_of` says)."""
    is_open = _open(sessions, at)
    t, next_open, next_close = at, None, None
    previous = is_open
    while (next_open is None or next_close is None) and t < _at(DAYS, 0):
        t += STEP  # sessions begin and end on the grid
        now_open = _open(sessions, t)
        if now_open and not previous and next_open is None:
            next_open = t
        if previous and not now_open and next_close is None:
            next_close = t
        previous = now_open
    return MarketClock(at, is_open, next_open, next_close)


def _expected_under_clock(sessions: dict[date, Session], clock: MarketClock) -> dict[datetime, bool]:
    """Step through each session in time: a step in the clock's closed span is closed, and once
    a session has been open, a closed step ends it for the day."""
    closed_from = clock.next_close if clock.is_open else clock.at
    expected = {}
    for day in sorted(sessions):
        seen_open = stopped = False
        for t in _grid():
            if not sessions[day].holds(t):
                continue
            in_span = closed_from <= t < clock.next_open
            if in_span:
                stopped = stopped or seen_open
                expected[t] = False
            else:
                expected[t] = not stopped
                seen_open = seen_open or expected[t]
    return expected


@settings(max_examples=300, deadline=None)
@given(exchange=calendars(), broker=calendars(), at_step=st.integers(0, STEPS_A_DAY * 2 - 1))
def test_the_brokers_clock_closes_what_it_says_is_closed(exchange, broker, at_step) -> None:
    at = _at(0, at_step)
    try:
        their_clock = _brute_force_clock(broker, at)
        our_clock = clock_of(exchange, at)
    except ValueError:
        return  # a side with no open or close left in the days drawn
    if their_clock.next_open is None or their_clock.next_close is None:
        return
    agreement = stricter_with_clock(exchange, their_clock)
    assert our_clock == _brute_force_clock(exchange, at)
    expected = _expected_under_clock(exchange, their_clock)
    for t in _grid():
        assert _open(agreement.sessions, t) == expected.get(t, False), t
    if our_clock == their_clock:
        assert agreement.disagreements == ()
    else:
        [disagreement] = agreement.disagreements
        assert isinstance(disagreement, ClockDisagreement)
        assert disagreement.exchange == our_clock and disagreement.broker == their_clock


def test_a_clock_that_says_closed_now_ends_the_session_in_progress() -> None:
    day, following = date(2024, 3, 5), date(2024, 3, 6)
    sessions = {d: Session(*trading_window.xnys_session_times(d)) for d in (day, following)}
    now = sessions[day].open + timedelta(hours=2)
    clock = MarketClock(now, False, sessions[following].open, sessions[following].close)
    agreement = stricter_with_clock(sessions, clock)
    assert agreement.sessions == {day: Session(sessions[day].open, now), following: sessions[following]}
    [disagreement] = agreement.disagreements
    assert disagreement.exchange.is_open and disagreement.changed == {day: Session(sessions[day].open, now)}


def test_sessions_refuse_naive_or_empty_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        Session(datetime(2024, 3, 5, 14, 30), datetime(2024, 3, 5, 21))
    with pytest.raises(ValueError, match="opens before it closes"):
        Session(_at(0, 3), _at(0, 3))
