"""Daily summary at 16:30 New York time on XNYS sessions only; weekly digest Friday 17:00."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.schemas import NotificationEventType
from services.trading.core.trading_window import session_times
from services.trading.notifications.schedule import daily_summary_due, weekly_digest_due
from services.trading.notifications.settings import NotificationSettings

NY = ZoneInfo("America/New_York")
DEFAULTS = NotificationSettings()


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def test_daily_summary_is_due_from_1630_until_sent_on_a_session() -> None:
    assert daily_summary_due(ny(2026, 3, 6, 16, 29, 59), DEFAULTS, None) is None
    report = daily_summary_due(ny(2026, 3, 6, 16, 30), DEFAULTS, None)
    assert report is not None and report.kind is NotificationEventType.DAILY_SUMMARY
    assert (report.period, report.first_day, report.last_day) == (
        "2026-03-06",
        date(2026, 3, 6),
        date(2026, 3, 6),
    )
    assert report.due_at == ny(2026, 3, 6, 16, 30)
    assert (
        daily_summary_due(ny(2026, 3, 6, 23, 59), DEFAULTS, None) is not None
    )  # started late: still today's
    assert daily_summary_due(ny(2026, 3, 6, 18, 0), DEFAULTS, "2026-03-06") is None  # already sent
    assert daily_summary_due(ny(2026, 3, 9, 16, 30), DEFAULTS, "2026-03-06").period == "2026-03-09"


def test_no_daily_summary_on_weekends_and_holidays() -> None:
    assert daily_summary_due(ny(2026, 3, 7, 18, 0), DEFAULTS, None) is None  # Saturday
    assert session_times(date(2026, 4, 3)) is None  # Good Friday
    assert daily_summary_due(ny(2026, 4, 3, 18, 0), DEFAULTS, None) is None


def test_summary_waits_for_an_early_close_and_follows_daylight_saving() -> None:
    noon = DEFAULTS.model_copy(update={"daily_summary_time": time(12, 0)})
    # 2026-11-27, the day after Thanksgiving, closes at 13:00: figures are final only then.
    assert daily_summary_due(ny(2026, 11, 27, 12, 30), noon, None) is None
    assert daily_summary_due(ny(2026, 11, 27, 13, 0), noon, None).due_at == ny(2026, 11, 27, 13, 0)
    # Summer: 16:30 EDT is 20:30 UTC; winter: 21:30 UTC.
    assert daily_summary_due(datetime(2026, 7, 10, 20, 30, tzinfo=UTC), DEFAULTS, None) is not None
    assert daily_summary_due(datetime(2026, 1, 9, 21, 29, tzinfo=UTC), DEFAULTS, None) is None


def test_weekly_digest_friday_1700_once_per_iso_week() -> None:
    assert weekly_digest_due(ny(2026, 3, 6, 16, 59), DEFAULTS, None) is None
    report = weekly_digest_due(ny(2026, 3, 6, 17, 0), DEFAULTS, None)
    assert (report.period, report.first_day, report.last_day) == (
        "2026-W10",
        date(2026, 3, 2),
        date(2026, 3, 6),
    )
    assert (
        weekly_digest_due(ny(2026, 3, 8, 23, 0), DEFAULTS, None).period == "2026-W10"
    )  # Sunday, not yet sent
    assert weekly_digest_due(ny(2026, 3, 8, 23, 0), DEFAULTS, "2026-W10") is None
    assert weekly_digest_due(ny(2026, 3, 9, 9, 0), DEFAULTS, "2026-W10") is None  # next week, Friday to come
    # A holiday Friday (Good Friday 2026-04-03) still closes a week.
    assert weekly_digest_due(ny(2026, 4, 3, 17, 0), DEFAULTS, "2026-W13").period == "2026-W14"


def test_weekly_digest_day_and_time_are_settings() -> None:
    monday_morning = DEFAULTS.model_copy(
        update={"weekly_digest_weekday": 0, "weekly_digest_time": time(8, 0)}
    )
    assert weekly_digest_due(ny(2026, 3, 9, 7, 59), monday_morning, "2026-W10") is None
    assert weekly_digest_due(ny(2026, 3, 9, 8, 0), monday_morning, "2026-W10").period == "2026-W11"
    # ISO weeks across the new year sort in time order as text.
    assert weekly_digest_due(ny(2027, 1, 1, 17, 0), DEFAULTS, "2026-W52").period == "2026-W53"


instants = st.datetimes(
    min_value=datetime(2001, 1, 2), max_value=datetime(2030, 12, 30), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(instants, st.sampled_from([daily_summary_due, weekly_digest_due]))
def test_a_report_is_never_due_early_nor_twice(now: datetime, is_due) -> None:
    report = is_due(now, DEFAULTS, None)
    if report is None:
        return
    assert report.due_at <= now
    assert now.astimezone(NY).date() >= report.last_day >= report.first_day
    assert is_due(now, DEFAULTS, report.period) is None
    if is_due is daily_summary_due:
        assert session_times(report.last_day) is not None
        assert report.due_at >= session_times(report.last_day)[1]
