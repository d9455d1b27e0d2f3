"""Two calendars that may disagree, and the stricter answer the engine trades on.

The engine's sessions come from exchange-calendars (XNYS). Trading through Alpaca, the
broker's calendar and clock state the same facts in their own words, and the two can differ: a
closing announced late, an early close one side missed, an error on either side. An order sent
while either says the market is closed may be refused or filled at a price nobody expected,
so the engine trades only where both say open: a day is a session when both have one, from
the later open to the earlier close.

The broker's clock (open now?, next open, next close) speaks of the time from its instant to
its next open. Where it says closed, the sessions lose that span; a session the span cuts in
two keeps only its first part (the engine does not trade a session again the day it closed).
Pure rules: the caller reads the calendars and applies the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from services.trading.core.trading_window import require_aware


@dataclass(frozen=True, slots=True)
class Session:
    """The market is open on [open, close)."""

    open: datetime
    close: datetime

    def __post_init__(self) -> None:
        require_aware(self.open, "open")
        require_aware(self.close, "close")
        if self.open >= self.close:
            raise ValueError(f"a session opens before it closes: {self.open} .. {self.close}")

    def holds(self, instant: datetime) -> bool:
        return self.open <= instant < self.close


@dataclass(frozen=True, slots=True)
class MarketClock:
    """A clock's answer at `at`: whether the market is open, when it next opens and closes."""

    at: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True, slots=True)
class DayDisagreement:
    day: date
    exchange: Session | None
    broker: Session | None
    used: Session | None


@dataclass(frozen=True, slots=True)
class ClockDisagreement:
    exchange: MarketClock
    broker: MarketClock
    changed: Mapping[date, Session | None]  # the sessions the broker's clock shortened or closed


@dataclass(frozen=True, slots=True)
class Agreement:
    """The sessions to use for each day checked (None: closed), and where the sources differed."""

    sessions: Mapping[date, Session | None]
    disagreements: tuple[DayDisagreement | ClockDisagreement, ...]


def stricter_session(a: Session | None, b: Session | None) -> Session | None:
    """Open only when both are: the later open, the earlier close; None if that leaves nothing."""
    if a is None or b is None:
        return None
    opens, closes = max(a.open, b.open), min(a.close, b.close)
    return Session(opens, closes) if opens < closes else None


def stricter_calendar(
    exchange: Mapping[date, Session], broker: Mapping[date, Session], days: Iterable[date]
) -> Agreement:
    """Each of `days` as both calendars allow it (a day missing from a calendar is closed)."""
    sessions: dict[date, Session | None] = {}
    disagreements: list[DayDisagreement] = []
    for day in sorted(set(days)):
        ours, theirs = exchange.get(day), broker.get(day)
        sessions[day] = stricter_session(ours, theirs)
        if ours != theirs:
            disagreements.append(DayDisagreement(day, ours, theirs, sessions[day]))
    return Agreement(sessions, tuple(disagreements))


def clock_of(sessions: Mapping[date, Session | None], at: datetime) -> MarketClock:
    """What `sessions` say at `at`, in a clock's words."""
    known = [s for s in sessions.values() if s is not None]
    opens = [s.open for s in known if s.open > at]
    closes = [s.close for s in known if s.close > at]
    if not opens or not closes:
        raise ValueError(f"the sessions given end before the next open or close after {at.isoformat()}")
    return MarketClock(at, any(s.holds(at) for s in known), min(opens), min(closes))


def closed_span(clock: MarketClock) -> tuple[datetime, datetime]:
    """Where the clock says the market is closed: from now (closed now) or from its next close
    (open now) until its next open. Empty when the clock contradicts itself."""
    return (clock.next_close if clock.is_open else clock.at), clock.next_open


def without_span(session: Session, start: datetime, end: datetime) -> Session | None:
    """`session` closed on [start, end); cut in two, it keeps its first part."""
    if start >= end or end <= session.open or start >= session.close:
        return session
    if start > session.open:
        return Session(session.open, start)
    if end < session.close:
        return Session(end, session.close)
    return None


def stricter_with_clock(sessions: Mapping[date, Session | None], clock: MarketClock) -> Agreement:
    """`sessions` (one per day) closed wherever the broker's clock says closed."""
    start, end = closed_span(clock)
    changed = {
        day: without_span(s, start, end)
        for day, s in sessions.items()
        if s is not None and without_span(s, start, end) != s
    }
    ours = clock_of(sessions, clock.at)
    disagreements = () if ours == clock else (ClockDisagreement(ours, clock, changed),)
    return Agreement({**sessions, **changed}, disagreements)
