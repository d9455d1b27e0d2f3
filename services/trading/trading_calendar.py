"""The NYSE (XNYS) calendar from `exchange-calendars`, built once per process.

Building the calendar takes about a second, so every module asks this one for it.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache

import exchange_calendars
import pandas as pd

CALENDAR_START = "1995-01-01"
CALENDAR_END = "2030-12-31"


@cache
def xnys() -> exchange_calendars.ExchangeCalendar:
    return exchange_calendars.get_calendar("XNYS", start=CALENDAR_START, end=CALENDAR_END)


def session_close(session: date) -> datetime:
    """The instant (UTC) the given session closed; a daily bar is complete then."""
    return xnys().session_close(pd.Timestamp(session)).to_pydatetime()
