"""Alpaca's calendar and clock against exchange-calendars, through the real SDK: where they
disagree, a warning says so and the stricter answer is what the engine's trading window
answers from then on."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import structlog

from services.alpaca_broker.calendar_check import cross_check_calendar
from services.alpaca_broker.fake_server import FakeAlpaca
from services.trading.core import trading_window
from services.trading.core.clock import SimulatedClock
from services.trading.core.trading_window import NEW_YORK
from tests.alpaca_broker.harness import KEY, MIDDAY, SECRET, SESSION, api_of


def _ny(day: date, hours: int, minutes: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=NEW_YORK)


@pytest.fixture
def alpaca():
    clock = SimulatedClock(MIDDAY)
    fake = FakeAlpaca(api_key=KEY, secret_key=SECRET, now=clock.now).start()
    yield fake, clock
    fake.stop()
    trading_window.forget_adopted_sessions()


async def _check(fake: FakeAlpaca, now: datetime) -> list[dict]:
    with structlog.testing.capture_logs() as logs:
        await cross_check_calendar(api_of(fake), now)
    return [entry for entry in logs if entry["log_level"] == "warning"]


async def test_an_early_close_or_holiday_only_alpaca_knows_is_kept(alpaca) -> None:
    fake, _ = alpaca
    early, holiday = date(2024, 3, 7), date(2024, 3, 8)
    fake.set_session(early, "09:30", "13:00")
    fake.set_session(holiday, None)
    assert trading_window.is_within_trading_window(_ny(early, 12, 50))  # XNYS's answer, cached

    warnings = await _check(fake, MIDDAY)

    assert [(w["day"], w["xnys"], w["alpaca"], w["used"]) for w in warnings] == [
        ("2024-03-07", "09:30-16:00", "09:30-13:00", "09:30-13:00"),
        ("2024-03-08", "09:30-16:00", "closed", "closed"),
    ]
    assert all("stricter answer" in w["event"] for w in warnings)
    assert trading_window.session_times(early) == (_ny(early, 9, 30), _ny(early, 13))
    assert not trading_window.is_market_open(_ny(early, 14))
    assert not trading_window.is_within_trading_window(_ny(early, 12, 50))
    assert trading_window.session_times(holiday) is None
    assert trading_window.next_session_open(_ny(early, 14)) == _ny(date(2024, 3, 11), 9, 30)
    # The exchange's own answer is still there to compare with next time.
    assert trading_window.xnys_session_times(holiday) == (_ny(holiday, 9, 30), _ny(holiday, 16))


async def test_an_early_close_or_holiday_only_the_exchange_calendar_knows_is_kept(alpaca) -> None:
    fake, clock = alpaca
    now = _ny(date(2024, 7, 1), 11, 30)
    clock.set(now)
    early, holiday = date(2024, 7, 3), date(2024, 7, 4)  # XNYS: 13:00 close, Independence Day
    fake.set_session(early, "09:30", "16:00")
    fake.set_session(holiday, "09:30", "16:00")

    warnings = await _check(fake, now)

    assert [(w["day"], w["xnys"], w["alpaca"], w["used"]) for w in warnings] == [
        ("2024-07-03", "09:30-13:00", "09:30-16:00", "09:30-13:00"),
        ("2024-07-04", "closed", "09:30-16:00", "closed"),
    ]
    assert trading_window.session_times(early) == (_ny(early, 9, 30), _ny(early, 13))
    assert trading_window.session_times(holiday) is None


async def test_a_clock_that_says_closed_ends_the_session_in_progress(alpaca) -> None:
    fake, _ = alpaca
    tomorrow = SESSION + timedelta(days=1)
    fake.set_clock(False, _ny(tomorrow, 9, 30), _ny(tomorrow, 16))

    [warning] = await _check(fake, MIDDAY)

    assert "clock" in warning["event"] and "stricter answer" in warning["event"]
    assert (warning["alpaca_open"], warning["calendar_open"]) == (False, True)
    assert warning["used"] == {SESSION.isoformat(): "09:30-11:30"}
    assert trading_window.is_market_open(MIDDAY - timedelta(minutes=1))
    assert not trading_window.is_market_open(MIDDAY)
    assert trading_window.session_times(tomorrow) == (_ny(tomorrow, 9, 30), _ny(tomorrow, 16))


async def test_agreeing_calendars_change_nothing_and_a_later_check_undoes_an_earlier_one(alpaca) -> None:
    fake, _ = alpaca
    day = date(2024, 3, 7)
    fake.set_session(day, "09:30", "13:00")
    await _check(fake, MIDDAY)
    assert trading_window.session_times(day)[1] == _ny(day, 13)

    fake.sessions.clear()  # Alpaca corrected its calendar
    assert await _check(fake, MIDDAY) == []
    assert trading_window.session_times(day) == trading_window.xnys_session_times(day)
