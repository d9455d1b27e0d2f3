"""When the engine may trade: XNYS sessions, the trading window and earnings proximity.

Seed task 12.1, docs/contracts.md section 6: the trading window is the half-open interval
[open + 15 min, close - 15 min) of each XNYS session ([09:45, 15:45) America/New_York on a
normal day, [09:45, 12:45) on a 13:00 early close); the market is open on [open, close).
Session times come from the real exchange calendar (`exchange_calendars`), never from
hard-coded hours, so holidays, early closes and DST are right by construction. A process that
trades through a broker may adopt, for coming days, the stricter of the exchange's and the
broker's sessions (`adopt_sessions`, `session_agreement.py`); every function here then answers
with those.

Every function takes a timezone-aware instant in any zone; naive datetimes are refused,
because guessing their zone is how a live system ends up trading an hour early.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from typing import ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import exchange_calendars as xcals

NEW_YORK = ZoneInfo("America/New_York")
EXCHANGE = "XNYS"
# exchange_calendars only answers inside the [start, end] it was built with (its default is
# roughly 20 years back to 1 year ahead of today, which would make results depend on the day
# the process started). A fixed range keeps every answer reproducible; backtests before 2000
# or runs after 2030 get a clear error instead of a silently wrong "market closed".
CALENDAR_START = date(2000, 1, 1)
CALENDAR_END = date(2030, 12, 31)
WINDOW_BUFFER = timedelta(minutes=15)
P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def xnys_calendar() -> xcals.ExchangeCalendar:
    """The XNYS calendar, built once per process (construction takes a few hundred ms)."""
    return xcals.get_calendar(EXCHANGE, start=CALENDAR_START.isoformat(), end=CALENDAR_END.isoformat())


@functools.cache
def _xnys_table() -> Mapping[date, tuple[datetime, datetime]]:
    """Session date -> (open, close) as aware UTC datetimes; a dict lookup is ~1000x faster
    than asking the calendar, and the stop-loss loop asks on every price check."""
    schedule = xnys_calendar().schedule
    return {
        label.date(): (row_open.to_pydatetime(), row_close.to_pydatetime())
        for label, row_open, row_close in zip(schedule.index, schedule["open"], schedule["close"])
    }


@functools.cache
def _session_table() -> dict[date, tuple[datetime, datetime]]:
    """The sessions this process trades on: XNYS's, with any adopted days in their place."""
    return dict(_xnys_table())


def xnys_session_times(day: date) -> tuple[datetime, datetime] | None:
    """(open, close) of `day` as exchange-calendars has it, whatever this process adopted."""
    return _xnys_table().get(day)


def adopt_sessions(days: Mapping[date, tuple[datetime, datetime] | None]) -> None:
    """From now on, in this process, each of `days` has these session times (None: closed).
    For the stricter answer of a cross-check with the broker's calendar, on coming days only:
    history stays the exchange's, so backtests are unaffected."""
    table = _session_table()
    for day, times in days.items():
        if times is None:
            table.pop(day, None)
        else:
            table[day] = times
    _forget_derived()


def forget_adopted_sessions() -> None:
    """Back to XNYS's sessions alone (tests)."""
    _session_table.cache_clear()
    _forget_derived()


_DERIVED_CACHES: list[Callable[[], None]] = []


def calendar_cache(function: Callable[P, R]) -> Callable[P, R]:
    """An lru_cache for an answer that follows from the sessions: emptied when they change."""
    cached = functools.lru_cache(maxsize=4096)(function)
    _DERIVED_CACHES.append(cached.cache_clear)
    return cached


def _forget_derived() -> None:
    _session_dates.cache_clear()
    for clear in _DERIVED_CACHES:
        clear()


@functools.cache
def _session_dates() -> tuple[date, ...]:
    return tuple(sorted(_session_table()))


def require_aware(instant: datetime, name: str = "instant") -> datetime:
    """Return `instant` unchanged if it carries a timezone; refuse naive datetimes."""
    if not isinstance(instant, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.tzinfo.utcoffset(instant) is None:
        raise ValueError(
            f"{name} {instant.isoformat()} is a naive datetime; pass a timezone-aware one "
            "(e.g. datetime(..., tzinfo=timezone.utc)) so the market hours cannot be misread"
        )
    return instant


def _new_york_date(instant: datetime) -> date:
    day = require_aware(instant).astimezone(NEW_YORK).date()
    if not CALENDAR_START <= day <= CALENDAR_END:
        raise ValueError(
            f"{instant.isoformat()} is outside the loaded XNYS calendar ({CALENDAR_START} .. {CALENDAR_END})"
        )
    return day


def session_times(day: date) -> tuple[datetime, datetime] | None:
    """(open, close) of the XNYS session on New York date `day`, or None if the exchange is
    closed that day (weekend, holiday)."""
    return _session_table().get(day)


def is_market_open(instant: datetime) -> bool:
    """True on [open, close) of an XNYS session."""
    times = session_times(_new_york_date(instant))
    return times is not None and times[0] <= instant < times[1]


@calendar_cache  # asked once per check of every decision
def is_within_trading_window(instant: datetime, buffer: timedelta = WINDOW_BUFFER) -> bool:
    """True on [open + buffer, close - buffer) of an XNYS session (docs/contracts.md section 6)."""
    times = session_times(_new_york_date(instant))
    return times is not None and times[0] + buffer <= instant < times[1] - buffer


def _sessions_from(day: date) -> Iterator[date]:
    """Session dates on or after `day`, in order."""
    dates = _session_dates()
    for index in range(bisect.bisect_left(dates, day), len(dates)):
        yield dates[index]


def next_session_open(instant: datetime) -> datetime:
    """The first session open strictly after `instant` (when a daily-loss halt ends)."""
    for day in _sessions_from(_new_york_date(instant)):
        opens_at = _session_table()[day][0]
        if opens_at > instant:
            return opens_at
    raise ValueError(f"no XNYS session after {instant.isoformat()} in the loaded calendar")


def next_window_open(instant: datetime, buffer: timedelta = WINDOW_BUFFER) -> datetime:
    """The first trading-window opening (session open + buffer) at or after `instant`.

    Inside a window this is the *next* session's opening: the window already open started
    in the past."""
    for day in _sessions_from(_new_york_date(instant)):
        window_opens = _session_table()[day][0] + buffer
        if window_opens >= instant:
            return window_opens
    raise ValueError(f"no XNYS trading window after {instant.isoformat()} in the loaded calendar")


def new_york_day_start(instant: datetime) -> datetime:
    """Midnight in New York starting `instant`'s New York date: where "today" begins for the
    daily limits (micro-trades a day), whose entries all fall in that day's session."""
    return datetime.combine(_new_york_date(instant), time.min, NEW_YORK)


def current_session_open(instant: datetime) -> datetime | None:
    """The open of the session `instant` falls in, or None when the market is closed."""
    times = session_times(_new_york_date(instant))
    if times is None or not times[0] <= instant < times[1]:
        return None
    return times[0]


def sessions_until(now: datetime, event_date: date) -> int | None:
    """How many XNYS sessions lie after today (New York date of `now`) up to and including
    `event_date`: 0 when the event is today, 1 when it falls on the next session, and so on.

    None when `event_date` is already past: there is no upcoming event to be near. A
    non-session event date (a Saturday announcement) counts the sessions before it, so it
    weighs like the preceding session's close.
    """
    today = _new_york_date(now)
    if event_date < today:
        return None
    if event_date > CALENDAR_END:
        raise ValueError(f"{event_date} is past the loaded XNYS calendar's end {CALENDAR_END}")
    dates = _session_dates()
    return bisect.bisect_right(dates, event_date) - bisect.bisect_right(dates, today)


@functools.lru_cache(maxsize=4096)  # a backtest asks at the same few instants of each session
def previous_session_close(instant: datetime) -> datetime:
    """The latest session close at or before `instant`."""
    dates = _session_dates()
    for index in range(bisect.bisect_right(dates, _new_york_date(instant)) - 1, -1, -1):
        closes_at = _session_table()[dates[index]][1]
        if closes_at <= instant:
            return closes_at
    raise ValueError(f"no XNYS session before {instant.isoformat()} in the loaded calendar")
