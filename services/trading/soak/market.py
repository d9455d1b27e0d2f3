"""The soak's market: the real sample (daily bars of AAPL, GOOG, IBM, MSFT), one session of it
replayed at the real pace, and the tickers malformed upstream rows need.

During the session the prices move: every few seconds each ticker gets an intraday bar from a
random walk kept inside that day's real [low, high], so stops and take-profits fire, a buy
and a sell of one ticker fill at different prices, and any entry price outside the day's
range is the engine's own doing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import asyncpg

from services.trading.core.trading_window import WINDOW_BUFFER, session_times
from services.trading.market import setup_steps
from services.trading.market.sample_data import SAMPLE_TICKERS

# The sample's last session: a Friday far from the four companies' earnings dates.
SOAK_SESSION = date(2013, 3, 1)
# Malformed upstream rows (issue 12): a ticker one character over the order job's 16, with
# prices; one whose last bar is two years old; one the market knows but has no price for.
LONG_TICKER = "SEVENTEENCHARSXYZ"
STALE_TICKER = "STALE"
BARE_TICKER = "BARE"
UNKNOWN_TICKER = "NOSUCH"
PRICE_STEP = Decimal("0.0001")
WALK_SIGMA = 0.0015  # per step, about the size of one minute's move


def soak_start(session: date) -> datetime:
    """A minute after the session's trading window opens."""
    times = session_times(session)
    if times is None:
        raise ValueError(f"{session} is not an XNYS session")
    return times[0] + WINDOW_BUFFER + timedelta(minutes=1)


def soak_room(session: date) -> timedelta:
    """How long a soak may run before the session's trading window closes."""
    times = session_times(session)
    assert times is not None
    return times[1] - WINDOW_BUFFER - soak_start(session)


async def load_market(connection: asyncpg.Connection, session: date, *, malformed: bool) -> None:
    await setup_steps.upgrade_schema(connection)
    await setup_steps.load_sample_market(connection)
    if malformed:
        await _malformed_tickers(connection, session)


async def _malformed_tickers(connection: asyncpg.Connection, session: date) -> None:
    await connection.executemany(
        "INSERT INTO tickers (ticker, sector) VALUES ($1, 'Technology')",
        [(LONG_TICKER,), (STALE_TICKER,), (BARE_TICKER,)],
    )
    # The long ticker trades like AAPL; the stale one like IBM, but its bars stop two years back.
    await connection.execute(
        """INSERT INTO price_bars SELECT $1, interval, ts, open, high, low, close, volume
           FROM price_bars WHERE ticker = 'AAPL'""",
        LONG_TICKER,
    )
    await connection.execute(
        """INSERT INTO price_bars SELECT $1, interval, ts, open, high, low, close, volume
           FROM price_bars WHERE ticker = 'IBM' AND ts < $2""",
        STALE_TICKER,
        session_times(session)[0] - timedelta(days=730),
    )


@dataclass(frozen=True, slots=True)
class DayRange:
    ticker: str
    open: Decimal
    low: Decimal
    high: Decimal


async def day_ranges(
    connection: asyncpg.Connection | asyncpg.Pool, session: date, tickers: tuple[str, ...]
) -> list[DayRange]:
    rows = await connection.fetch(
        "SELECT ticker, open, low, high FROM price_bars WHERE interval = '1d' AND ts = $1 AND ticker = ANY($2)",
        session_times(session)[1],
        list(tickers),
    )
    return [DayRange(r["ticker"], r["open"], r["low"], r["high"]) for r in rows]


class PriceWalk:
    """Each ticker's price: a seeded random walk from the day's open, reflected at its low and
    high, so every price the soak publishes is one the day really traded through."""

    def __init__(self, ranges: list[DayRange], rng: random.Random) -> None:
        self.ranges = {r.ticker: r for r in ranges}
        self.prices = {r.ticker: float(r.open) for r in ranges}
        self.rng = rng

    def step(self) -> dict[str, Decimal]:
        for ticker, price in self.prices.items():
            day = self.ranges[ticker]
            low, high = float(day.low), float(day.high)
            moved = price * (1 + self.rng.gauss(0, WALK_SIGMA))
            if moved > high:
                moved = 2 * high - moved
            if moved < low:
                moved = 2 * low - moved
            self.prices[ticker] = min(max(moved, low), high)
        return {t: Decimal(repr(p)).quantize(PRICE_STEP) for t, p in self.prices.items()}


async def publish_prices(pool: asyncpg.Pool, prices: dict[str, Decimal], at: datetime) -> None:
    """One intraday bar per ticker at `at` (to the second), all four prices equal."""
    ts = at.replace(microsecond=0)
    await pool.executemany(
        "INSERT INTO price_bars VALUES ($1, '1m', $2, $3, $3, $3, $3, 100) ON CONFLICT DO NOTHING",
        [(ticker, ts, price) for ticker, price in prices.items()],
    )


def traded_tickers(malformed: bool) -> tuple[str, ...]:
    """Tickers whose prices move during the soak (the long one too: it must be tradable)."""
    return (*SAMPLE_TICKERS, LONG_TICKER) if malformed else SAMPLE_TICKERS
