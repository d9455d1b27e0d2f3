"""A buy needs a current price (issue 12, defect 3): from the current session for a daily feed,
at most the missing-price rule's age for an intraday one; otherwise a skip with the price's age."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.core import stop_loss_manager
from services.trading.core.decision import decide
from services.trading.core.quote import Quote
from services.trading.core.trading_window import WINDOW_BUFFER, session_times
from tests.trading.test_decision import MARKET, ON, _ctx, _rec

MAX_AGE = ON.stops.price_stale_after
SESSIONS = [d for d in (date(2023, 1, 2) + timedelta(days=i) for i in range(800)) if session_times(d)]


def _buy(now: datetime, as_of: datetime | None, interval: str = "1d"):
    rec = replace(_rec(), generated_at=now)
    return decide(
        rec,
        replace(MARKET, price_as_of=as_of, price_interval=interval),
        _ctx(),
        now=now,
        decision_id=uuid.uuid4(),
    )


def _last_close_at_or_before(now: datetime) -> datetime:
    """Walking back the calendar a day at a time (not the rule's own lookup)."""
    day = now.date() + timedelta(days=1)
    while True:
        times = session_times(day)
        if times is not None and times[1] <= now:
            return times[1]
        day -= timedelta(days=1)


# Tuesday 2024-03-05: open 14:30 UTC, close 21:00 UTC; Monday's close 21:00 UTC the day before.
OPEN, NOW = datetime(2024, 3, 5, 14, 30, tzinfo=UTC), datetime(2024, 3, 5, 16, 0, tzinfo=UTC)
MONDAY_CLOSE = datetime(2024, 3, 4, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("as_of", "interval"),
    [
        (OPEN, "1d"),  # today's daily bar: its open, known from the open on
        (MONDAY_CLOSE, "1d"),  # the last close before the session: a daily feed's current price
        (NOW - timedelta(minutes=5), "5m"),
        (NOW - MAX_AGE, "1m"),
    ],
)
def test_a_current_price_buys(as_of, interval) -> None:
    assert _buy(NOW, as_of, interval).acted


@pytest.mark.parametrize(
    ("as_of", "interval"),
    [
        (datetime(2022, 2, 14, 21, 0, tzinfo=UTC), "1d"),  # the two-year-old bar
        (MONDAY_CLOSE - timedelta(days=1), "1d"),  # a session behind: the feed missed Monday's bar
        (NOW - MAX_AGE - timedelta(seconds=1), "5m"),
        (MONDAY_CLOSE, "5m"),  # intraday bars stopped yesterday
        (None, "1d"),  # no time at all: the age is unknown
    ],
)
def test_an_old_price_is_a_skip_naming_its_age(as_of, interval) -> None:
    outcome = _buy(NOW, as_of, interval)
    assert outcome.failed_check == "price_age" and outcome.orders == ()
    assert "a buy needs a" in outcome.skip_reason and (
        as_of is None or as_of.isoformat() in outcome.skip_reason
    )


def test_a_sell_is_not_held_back_by_an_old_price() -> None:
    """Selling what is held reduces risk; the missing-price rule closes it anyway."""
    from decimal import Decimal

    from services.trading.core.models import OpenPosition

    held = OpenPosition(
        "XYZ", Decimal(3), Decimal(45), Decimal(50), "Technology", Decimal(42), Decimal(51), Decimal("0.8")
    )
    rec = replace(_rec(action="sell"), generated_at=NOW)
    stale = replace(MARKET, price_as_of=datetime(2022, 2, 14, 21, 0, tzinfo=UTC))
    assert decide(rec, stale, _ctx(positions=[held]), now=NOW, decision_id=uuid.uuid4()).acted


@settings(max_examples=300, deadline=None)
@given(
    day=st.sampled_from(SESSIONS),
    into_window=st.floats(0, 1),
    interval=st.sampled_from(["1d", "5m", "1m"]),
    age=st.one_of(st.timedeltas(timedelta(0), MAX_AGE * 2), st.timedeltas(timedelta(0), timedelta(days=800))),
)
def test_a_buy_is_never_made_on_a_price_older_than_allowed(day, into_window, interval, age) -> None:
    """Stated apart from the rule: a buy acts exactly when its price is current, that is at
    most the allowed age old, or, from a daily feed, no older than the last session close; and
    the missing-price rule never closes at once what was just bought."""
    opens, closes = session_times(day)
    start, end = opens + WINDOW_BUFFER, closes - WINDOW_BUFFER
    now = start + (end - start - timedelta(seconds=1)) * into_window
    as_of = now - age
    current = age <= MAX_AGE or (interval == "1d" and as_of >= _last_close_at_or_before(now))
    outcome = _buy(now, as_of, interval)
    assert outcome.acted == current, outcome.skip_reason
    if outcome.acted:
        confirmed = Quote("XYZ", MARKET.price, as_of, interval).confirmed_at(now)
        assert stop_loss_manager.check_price_unavailable("XYZ", confirmed, now) is None
