"""The sample market is real, consistent, split-adjusted data with sectors and earnings."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from services.trading.core.trading_window import is_market_open
from services.trading.market import sample_data, setup_steps


@pytest.fixture(scope="module")
def bars() -> list:
    return sample_data.load_sample_bars()


def test_bars_are_internally_consistent(bars: list) -> None:
    assert {b.ticker for b in bars} == set(sample_data.SAMPLE_TICKERS)
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) and bar.high >= max(bar.open, bar.close)
        assert bar.volume >= 0 and bar.interval == "1d"


def test_bars_are_stamped_at_the_session_close(bars: list) -> None:
    # At the close the market has just shut: one second before, it was open.
    from datetime import timedelta

    for bar in bars[:: len(bars) // 50]:
        assert not is_market_open(bar.ts)
        assert is_market_open(bar.ts - timedelta(seconds=1))


SPLITS = [("AAPL", "2000-06-21"), ("AAPL", "2005-02-28"), ("MSFT", "2003-02-18")]


@pytest.mark.parametrize(("ticker", "split_day"), SPLITS)
def test_splits_are_adjusted_away(bars: list, ticker: str, split_day: str) -> None:
    """Each of these 2:1 splits halves the unadjusted close overnight; adjusted, the day's
    move is an ordinary one."""
    series = [b for b in bars if b.ticker == ticker]
    index = next(i for i, b in enumerate(series) if b.ts.date().isoformat() == split_day)
    before, after = series[index - 1].close, series[index].close
    assert Decimal("0.85") < after / before < Decimal("1.15")


def test_sectors_and_earnings_are_known() -> None:
    infos = sample_data.sample_tickers()
    assert [i.ticker for i in infos] == list(sample_data.SAMPLE_TICKERS)
    assert all(i.sector != "Unknown" for i in infos)
    earnings = sample_data.sample_earnings()
    assert {e.ticker for e in earnings} == set(sample_data.SAMPLE_TICKERS)
    assert len(earnings) > 100


@pytest.mark.integration
async def test_loading_twice_keeps_one_copy(db: asyncpg.Connection) -> None:
    first = await setup_steps.load_sample_market(db)
    counts = await db.fetchrow(
        "SELECT (SELECT count(*) FROM price_bars) AS bars, "
        "(SELECT count(*) FROM earnings_calendar) AS earnings"
    )
    await setup_steps.load_sample_market(db)
    again = await db.fetchrow(
        "SELECT (SELECT count(*) FROM price_bars) AS bars, "
        "(SELECT count(*) FROM earnings_calendar) AS earnings"
    )
    assert counts == again
    assert counts["bars"] == first.bars == len(sample_data.load_sample_bars())
