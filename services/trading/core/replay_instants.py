"""The instants at which history in daily bars is replayed, by the live stack (the demo) and
by the backtester when it times a session as the live engine would (`FillTiming.LIVE`).

Daily bars hold one price for a session until its close (the open), so a replay need only
visit the instants where something can happen: the trading window's opening (protection,
decisions, first orders), each half hour a gradual entry's later tranche falls due, the
window's last minute (a micro-trade's timed close), and the close (the session's snapshot and
risk tier). Both replays visit the same instants, from this one list.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from services.trading.core.gradual_entry import GradualEntrySettings
from services.trading.core.trading_window import WINDOW_BUFFER, session_times

TRANCHE_STEPS = tuple(GradualEntrySettings().tranche_spacing * n for n in (1, 2))


def session_instants(day: date) -> list[datetime]:
    """The instants a replay visits in session `day`, in order; the last is the close."""
    times = session_times(day)
    if times is None:
        raise ValueError(f"{day} is not an XNYS session")
    opens, closes = times
    window_open = opens + WINDOW_BUFFER
    return [
        window_open,
        *(window_open + step for step in TRANCHE_STEPS),
        closes - WINDOW_BUFFER - timedelta(minutes=1),
        closes,
    ]


def sessions_between(start: date, end: date) -> list[date]:
    """XNYS sessions from `start` to `end`, both included."""
    days, day = [], start
    while day <= end:
        if session_times(day) is not None:
            days.append(day)
        day += timedelta(days=1)
    return days
