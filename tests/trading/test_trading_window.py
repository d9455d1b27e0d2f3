"""Trading window on the real XNYS calendar (seed task 12.1/12.3, docs/contracts.md section 6).

Expected answers come from exchange_calendars' own `session_open`/`session_close`/
`sessions_in_range`, never from the module's lookup table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core import trading_window as tw

NY = ZoneInfo("America/New_York")
CAL = tw.xnys_calendar()
ZONES = [
    UTC,
    NY,
    ZoneInfo("Europe/London"),
    ZoneInfo("Asia/Tokyo"),
    timezone(timedelta(hours=-7)),
    ZoneInfo("Australia/Sydney"),
]

instants = st.datetimes(
    min_value=datetime(2000, 1, 4), max_value=datetime(2030, 12, 28), timezones=st.sampled_from(ZONES)
)


def _ny(y: int, m: int, d: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=NY)


def _calendar_sessions_around(instant: datetime) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(open, close) of every session within two days of `instant`, from the calendar API."""
    utc = pd.Timestamp(instant).tz_convert("UTC")
    first = (utc - pd.Timedelta(days=2)).tz_localize(None).normalize()
    last = (utc + pd.Timedelta(days=2)).tz_localize(None).normalize()
    first = max(first, CAL.first_session)
    last = min(last, CAL.last_session)
    return [(CAL.session_open(s), CAL.session_close(s)) for s in CAL.sessions_in_range(first, last)]


@settings(max_examples=300, deadline=None)
@given(instants)
def test_property_20_trading_window_matches_calendar(instant: datetime) -> None:
    """Property 20: an instant is in the trading window iff it lies in [open + 15 min,
    close - 15 min) of some XNYS session; in the market iff it lies in [open, close)."""
    t = pd.Timestamp(instant)
    sessions = _calendar_sessions_around(instant)
    quarter = pd.Timedelta(minutes=15)
    in_window = any(o + quarter <= t < c - quarter for o, c in sessions)
    in_market = any(o <= t < c for o, c in sessions)
    assert tw.is_within_trading_window(instant) is in_window
    assert tw.is_market_open(instant) is in_market


@settings(max_examples=100, deadline=None)
@given(
    st.dates(min_value=date(2000, 1, 3), max_value=date(2030, 12, 20)),
    st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_property_20_trading_window_on_session_minutes(day: date, minute: int) -> None:
    """Property 20: sampled densely over New York wall-clock minutes of random days, the
    window is exactly [open + 15, close - 15) of that day's calendar session."""
    instant = datetime.combine(day, datetime.min.time(), tzinfo=NY) + timedelta(minutes=minute)
    label = pd.Timestamp(day)
    expected = False
    if CAL.is_session(label):
        quarter = pd.Timedelta(minutes=15)
        expected = (
            CAL.session_open(label) + quarter <= pd.Timestamp(instant) < CAL.session_close(label) - quarter
        )
    assert tw.is_within_trading_window(instant) is expected


@settings(max_examples=100, deadline=None)
@given(instants)
def test_next_window_open_is_first_window_at_or_after(instant: datetime) -> None:
    """Property 20 (next window): the answer is a session open + 15 min, not before
    `instant`, and no window opening lies in between."""
    opening = tw.next_window_open(instant)
    assert opening >= instant
    label = pd.Timestamp(opening.astimezone(NY).date())
    assert CAL.is_session(label)
    assert pd.Timestamp(opening) == CAL.session_open(label) + pd.Timedelta(minutes=15)
    for o, _ in _calendar_sessions_around(instant):
        assert not instant <= (o + pd.Timedelta(minutes=15)).to_pydatetime() < opening


def test_regular_day_window_edges() -> None:
    assert not tw.is_within_trading_window(_ny(2024, 6, 3, 9, 44, 59))
    assert tw.is_within_trading_window(_ny(2024, 6, 3, 9, 45))
    assert tw.is_within_trading_window(_ny(2024, 6, 3, 15, 44, 59))
    assert not tw.is_within_trading_window(_ny(2024, 6, 3, 15, 45))
    assert tw.is_market_open(_ny(2024, 6, 3, 9, 30))
    assert not tw.is_market_open(_ny(2024, 6, 3, 16, 0))


@pytest.mark.parametrize("day", [date(2024, 11, 29), date(2024, 7, 3)])
def test_half_day_session_closes_window_at_1245(day: date) -> None:
    """13:00 early close: window [09:45, 12:45), market [09:30, 13:00)."""
    assert CAL.session_close(pd.Timestamp(day)).tz_convert(NY).hour == 13
    y, m, d = day.year, day.month, day.day
    assert tw.is_within_trading_window(_ny(y, m, d, 12, 44, 59))
    assert not tw.is_within_trading_window(_ny(y, m, d, 12, 45))
    assert tw.is_market_open(_ny(y, m, d, 12, 59, 59))
    assert not tw.is_market_open(_ny(y, m, d, 13, 0))


def test_holidays_and_weekends_are_outside() -> None:
    for instant in (_ny(2024, 11, 28, 11, 0), _ny(2024, 12, 25, 11, 0), _ny(2024, 6, 1, 11, 0)):
        assert not tw.is_within_trading_window(instant)
        assert not tw.is_market_open(instant)


@pytest.mark.parametrize(
    ("day", "window_opens_utc_hour"),
    [
        (date(2024, 3, 8), 14),
        (date(2024, 3, 11), 13),  # EST -> EDT over the weekend of 10 March
        (date(2024, 11, 1), 13),
        (date(2024, 11, 4), 14),  # EDT -> EST over the weekend of 3 November
    ],
)
def test_dst_change_days_follow_new_york_wall_clock(day: date, window_opens_utc_hour: int) -> None:
    """Around DST switches the window stays 09:45-15:45 New York time, whose UTC offset moves."""
    y, m, d = day.year, day.month, day.day
    assert tw.is_within_trading_window(_ny(y, m, d, 9, 45))
    assert not tw.is_within_trading_window(_ny(y, m, d, 9, 44, 59))
    assert not tw.is_within_trading_window(_ny(y, m, d, 15, 45))
    opens_utc = _ny(y, m, d, 9, 45).astimezone(UTC)
    assert tw.is_within_trading_window(opens_utc)
    assert not tw.is_within_trading_window(opens_utc - timedelta(seconds=1))
    assert (opens_utc.hour, opens_utc.minute) == (window_opens_utc_hour, 45)


def test_next_window_open_across_weekend_and_holiday() -> None:
    friday_late = _ny(2024, 11, 29, 12, 50)  # after the half-day window closed
    assert tw.next_window_open(friday_late) == _ny(2024, 12, 2, 9, 45)
    before_open = _ny(2024, 12, 2, 8, 0)
    assert tw.next_window_open(before_open) == _ny(2024, 12, 2, 9, 45)
    assert tw.next_window_open(_ny(2024, 12, 24, 16, 0)) == _ny(2024, 12, 26, 9, 45)


def test_next_session_open_is_strictly_after() -> None:
    assert tw.next_session_open(_ny(2024, 6, 3, 9, 30)) == _ny(2024, 6, 4, 9, 30)
    assert tw.next_session_open(_ny(2024, 6, 3, 9, 29, 59)) == _ny(2024, 6, 3, 9, 30)
    assert tw.next_session_open(_ny(2024, 3, 8, 15, 0)) == _ny(2024, 3, 11, 9, 30)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        tw.is_within_trading_window(datetime(2024, 6, 3, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        tw.is_market_open(datetime(2024, 6, 3, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        tw.next_window_open(datetime(2024, 6, 3, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        tw.sessions_until(datetime(2024, 6, 3, 10, 0), date(2024, 6, 5))


def test_outside_loaded_calendar_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="outside the loaded XNYS calendar"):
        tw.is_market_open(datetime(1999, 6, 1, 15, 0, tzinfo=UTC))
    with pytest.raises(ValueError, match="past the loaded XNYS calendar"):
        tw.sessions_until(datetime(2030, 12, 10, tzinfo=UTC), date(2031, 1, 2))


@settings(max_examples=100, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2000, 1, 4), max_value=datetime(2030, 11, 1), timezones=st.sampled_from(ZONES)
    ),
    st.integers(min_value=-5, max_value=40),
)
def test_sessions_until_counts_calendar_sessions(now: datetime, days_ahead: int) -> None:
    """Earnings proximity input: the number of calendar sessions after today up to and
    including the event date; None once the date has passed."""
    today = now.astimezone(NY).date()
    event = today + timedelta(days=days_ahead)
    result = tw.sessions_until(now, event)
    if event < today:
        assert result is None
        return
    expected = (
        len(CAL.sessions_in_range(pd.Timestamp(today + timedelta(days=1)), pd.Timestamp(event)))
        if event > today
        else 0
    )
    assert result == expected


def test_sessions_until_examples() -> None:
    wednesday = _ny(2024, 11, 27, 10, 0)
    assert tw.sessions_until(wednesday, date(2024, 11, 27)) == 0
    assert tw.sessions_until(wednesday, date(2024, 11, 29)) == 1  # Thanksgiving skipped
    assert tw.sessions_until(wednesday, date(2024, 12, 2)) == 2
    assert tw.sessions_until(wednesday, date(2024, 11, 26)) is None
