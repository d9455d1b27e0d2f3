"""The sample momentum signal, checked against a pandas statement of the same rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading.market import momentum_signal, setup_steps
from services.trading.market.market_data import PriceBar

START = datetime(2024, 1, 2, 21, tzinfo=UTC)


def _bars(closes: list[float]) -> list[PriceBar]:
    return [
        PriceBar(
            "XYZ",
            "1d",
            START + timedelta(days=i),
            Decimal(str(c)),
            Decimal(str(c)),
            Decimal(str(c)),
            Decimal(str(c)),
            100,
        )
        for i, c in enumerate(closes)
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1, max_value=1000, allow_nan=False), min_size=0, max_size=120))
def test_signals_fire_exactly_at_sma_crossings(closes: list[float]) -> None:
    bars = _bars(closes)
    series = pd.Series([float(b.close) for b in bars], dtype=float)
    fast = series.rolling(10).mean()
    slow = series.rolling(30).mean()
    above = fast > slow
    expected = {}
    # The first crossing that can be seen is at bar 30: both averages exist from bar 29 on.
    for i in range(30, len(series)):
        if above[i] != above[i - 1]:
            expected[bars[i].ts] = "buy" if above[i] else "sell"
    drafts = momentum_signal.crossover_signals(bars)
    # pandas' rolling mean and the cumulative-sum SMA may differ in the last bits; ignore the
    # crossings decided by such a tie.
    ties = {bars[i].ts for i in range(len(series)) if abs(fast[i] - slow[i]) < 1e-9}
    assert {d.generated_at: d.action for d in drafts if d.generated_at not in ties} == {
        ts: a for ts, a in expected.items() if ts not in ties
    }
    for draft in drafts:
        assert 0.5 <= draft.confidence <= 0.95
        assert draft.mode == "paper_eligible"


def test_confidence_rises_with_the_move() -> None:
    assert momentum_signal.confidence_for(0.0) == 0.5
    assert momentum_signal.confidence_for(0.04) == pytest.approx(0.725)
    assert momentum_signal.confidence_for(0.50) == 0.95


@pytest.mark.integration
async def test_signals_are_written_once(db: asyncpg.Connection) -> None:
    await setup_steps.load_sample_market(db)
    first = await setup_steps.write_momentum_signals(db, ["AAPL"])
    assert first > 10
    assert await setup_steps.write_momentum_signals(db, ["AAPL"]) == 0
    assert await db.fetchval("SELECT count(*) FROM recommendations WHERE ticker = 'AAPL'") == first
