"""Micro-trading through the live engine (seed task 17.1): intraday signals take the micro
path, and the daily limit counts the micro entries already made today."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from tests.trading.engine_harness import RISING, at, build_stack, recommend, seed_ticker, sessions

pytestmark = pytest.mark.integration


async def _intraday_bars(pool, ticker: str, day, base: float) -> None:
    """Five-minute bars from the open to 10:55: an intraday price and ATR for the micro path."""
    rows = []
    for i in range(18):
        price = base + (0.2 if i % 2 else -0.2)
        rows.append(
            (
                ticker,
                "5m",
                at(day, 9, 30) + timedelta(minutes=5 * i),
                *(Decimal(str(round(v, 2))) for v in (price, price + 0.3, price - 0.3, price)),
                1000,
            )
        )
    await pool.executemany("INSERT INTO price_bars VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", rows)


async def test_intraday_signals_trade_micro_within_the_daily_limit(
    market, redis_client: aioredis.Redis
) -> None:
    pool, days = market
    await seed_ticker(pool, "ABC", [60 + i * 0.2 for i in range(len(RISING))], sector="Energy")
    await pool.execute(
        "UPDATE trading_engine_config SET micro_trading_enabled = true, micro_trading_max_daily = 1"
    )
    day = sessions(days[-1], 2)[1]
    await _intraday_bars(pool, "XYZ", day, 115.0)
    await _intraday_bars(pool, "ABC", day, 66.0)
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    try:
        first = await recommend(pool, "XYZ", at(day, 10, 50), confidence=0.9, window="intraday")
        second = await recommend(pool, "ABC", at(day, 10, 50), confidence=0.8, window="intraday")
        await built.step(at(day, 11, 0))
        rows = {
            r["recommendation_id"]: r
            for r in await pool.fetch(
                "SELECT recommendation_id, decision, is_micro_trade, skip_reason FROM trading_decisions"
            )
        }
        assert rows[first]["decision"] == "act" and rows[first]["is_micro_trade"], rows[first]["skip_reason"]
        assert rows[second]["decision"] == "skip" and "daily limit" in rows[second]["skip_reason"]
    finally:
        await built.engine.stop()
