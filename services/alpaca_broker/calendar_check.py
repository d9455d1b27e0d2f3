"""Alpaca's calendar and clock checked against exchange-calendars (XNYS); the stricter answer
adopted by this process's trading window, which every rule of the engine asks.

Run before the engine trades (`stonks run` with Alpaca) and again after each close: Alpaca's
sessions for today and the next `CHECKED_DAYS` days, then its clock, against XNYS's. Each
disagreement is a warning naming the day (or the clock), both answers and the one used; the
answer used is open only where both say open (`core/session_agreement.py`). Every checked day
is computed afresh from XNYS and Alpaca, so a correction on either side is taken at the next check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import structlog
from alpaca.trading.models import Calendar

from services.alpaca_broker.api import AlpacaApi
from services.trading.core import trading_window
from services.trading.core.session_agreement import (
    ClockDisagreement,
    DayDisagreement,
    MarketClock,
    Session,
    stricter_calendar,
    stricter_with_clock,
)
from services.trading.core.trading_window import NEW_YORK

log = structlog.get_logger(__name__)
CHECKED_DAYS = 30


@dataclass(frozen=True, slots=True)
class CalendarCheck:
    sessions: dict[date, Session | None]  # what this process now trades on, per checked day
    disagreements: tuple[DayDisagreement | ClockDisagreement, ...]


def _session_of(day: Calendar) -> Session:
    """Alpaca's day: open and close are New York wall times."""
    return Session(day.open.replace(tzinfo=NEW_YORK), day.close.replace(tzinfo=NEW_YORK))


async def cross_check_calendar(api: AlpacaApi, now: datetime) -> CalendarCheck:
    today = now.astimezone(NEW_YORK).date()
    days = [today + timedelta(days=offset) for offset in range(CHECKED_DAYS + 1)]
    calendar = await api.calendar(days[0], days[-1])
    clock = await api.clock()
    exchange = {day: Session(*times) for day in days if (times := trading_window.xnys_session_times(day))}
    broker = {day.date: _session_of(day) for day in calendar}
    by_calendar = stricter_calendar(exchange, broker, days)
    by_clock = stricter_with_clock(
        by_calendar.sessions, MarketClock(clock.timestamp, clock.is_open, clock.next_open, clock.next_close)
    )
    trading_window.adopt_sessions(
        {
            day: None if s is None else (s.open.astimezone(UTC), s.close.astimezone(UTC))
            for day, s in by_clock.sessions.items()
        }
    )
    disagreements = by_calendar.disagreements + by_clock.disagreements
    for disagreement in disagreements:
        _log(disagreement)
    if not disagreements:
        log.info("alpaca's calendar and clock agree with the exchange calendar (XNYS)", days=len(days))
    return CalendarCheck(dict(by_clock.sessions), disagreements)


def _hours(session: Session | None) -> str:
    if session is None:
        return "closed"
    return f"{session.open.astimezone(NEW_YORK):%H:%M}-{session.close.astimezone(NEW_YORK):%H:%M}"


def _moment(instant: datetime) -> str:
    return instant.astimezone(NEW_YORK).isoformat(timespec="minutes")


def _log(disagreement: DayDisagreement | ClockDisagreement) -> None:
    if isinstance(disagreement, DayDisagreement):
        log.warning(
            "alpaca's calendar disagrees with the exchange calendar (XNYS); trading on the stricter answer",
            day=disagreement.day.isoformat(),
            xnys=_hours(disagreement.exchange),
            alpaca=_hours(disagreement.broker),
            used=_hours(disagreement.used),
        )
        return
    ours, theirs = disagreement.exchange, disagreement.broker
    log.warning(
        "alpaca's clock disagrees with the calendar; trading on the stricter answer",
        at=_moment(theirs.at),
        alpaca_open=theirs.is_open,
        calendar_open=ours.is_open,
        alpaca_next_open=_moment(theirs.next_open),
        calendar_next_open=_moment(ours.next_open),
        alpaca_next_close=_moment(theirs.next_close),
        calendar_next_close=_moment(ours.next_close),
        used={day.isoformat(): _hours(s) for day, s in disagreement.changed.items()} or "unchanged",
    )
