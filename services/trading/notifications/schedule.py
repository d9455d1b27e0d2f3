"""When the daily summary and the weekly digest are due (seed tasks 16.1 and 25.5), pure.

docs/contracts.md section 5: the daily summary at 16:30 America/New_York on XNYS sessions only; the weekly
digest on Friday at 17:00 New York time. Both times and the weekday are owner settings.
A report is due from its time until the end of its New York day (summary) or week (digest)
if not yet sent for that period: an engine started at 18:00 still sends the day's summary,
but one started the next morning does not send yesterday's, which would only be noise.
The summary never goes out before that session's close (on an early-close day set to
12:00 it waits for 13:00), because before the close the day's figures are not final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from services.shared.schemas import NotificationEventType
from services.trading.core.trading_window import NEW_YORK, require_aware, session_times
from services.trading.notifications.settings import NotificationSettings


@dataclass(frozen=True, slots=True)
class ScheduledReport:
    """A report to send now: `period` names it once and for all ('2026-03-06', '2026-W10');
    `first_day`..`last_day` are the New York dates it covers."""

    kind: NotificationEventType
    period: str
    due_at: datetime
    first_day: date
    last_day: date


def daily_period(day: date) -> str:
    return day.isoformat()


def weekly_period(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _at(day: date, wall: time) -> datetime:
    return datetime.combine(day, wall, tzinfo=NEW_YORK)


def daily_summary_due(
    now: datetime, settings: NotificationSettings, last_sent_period: str | None
) -> ScheduledReport | None:
    """Today's summary if today is an XNYS session, its time has come and it is not sent."""
    local = require_aware(now, "now").astimezone(NEW_YORK)
    day = local.date()
    times = session_times(day)
    if times is None:
        return None
    due_at = max(_at(day, settings.daily_summary_time), times[1])
    period = daily_period(day)
    if now < due_at or (last_sent_period is not None and last_sent_period >= period):
        return None
    return ScheduledReport(NotificationEventType.DAILY_SUMMARY, period, due_at, day, day)


def weekly_digest_due(
    now: datetime, settings: NotificationSettings, last_sent_period: str | None
) -> ScheduledReport | None:
    """This ISO week's digest once its weekday and time have come, if not sent yet. It
    covers Monday to the digest's day, holiday or not: a week is a week."""
    local = require_aware(now, "now").astimezone(NEW_YORK)
    monday = local.date() - timedelta(days=local.weekday())
    day = monday + timedelta(days=settings.weekly_digest_weekday)
    due_at = _at(day, settings.weekly_digest_time)
    period = weekly_period(day)
    if now < due_at or (last_sent_period is not None and last_sent_period >= period):
        return None
    return ScheduledReport(NotificationEventType.WEEKLY_DIGEST, period, due_at, monday, day)
