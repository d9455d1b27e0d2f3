"""The live loop end to end on real PostgreSQL and Redis (seed task 25.7): recommendation to
order, fills to tax lots and stops, stop crossing to an immediate sell, siphon on a
profitable close, breaker halt and resume, and a restart that rebuilds the same state."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from services.shared.redis_keys import QUEUE_BROKER_ORDERS
from services.trading.live import breaker_cache
from tests.trading.engine_harness import (
    RISING,
    RecordingNotifier,
    add_bar,
    at,
    build_stack,
    enable_engine,
    recommend,
    seed_ticker,
    sessions,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(market, redis_client: aioredis.Redis):
    pool, days = market
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    yield built, days
    await built.engine.stop()


async def _buy_and_fill(stack, days) -> tuple:
    """A confident buy recommended after the last close, filled at the next session's open."""
    built, pool = stack, stack.pool
    next_day = sessions(days[-1], 2)[1]
    await add_bar(pool, "XYZ", next_day, open_=115.0, close=116.0)
    rec_id = await recommend(pool, "XYZ", at(days[-1], 16, 10))
    await built.step(at(next_day, 9, 45))
    return rec_id, next_day


async def test_recommendation_to_order_to_position(stack) -> None:
    built, days = stack
    rec_id, next_day = await _buy_and_fill(built, days)
    decision = await built.pool.fetchrow(
        "SELECT * FROM trading_decisions WHERE recommendation_id = $1", rec_id
    )
    assert decision["decision"] == "act", decision["skip_reason"]
    job = await built.pool.fetchrow(
        "SELECT * FROM order_outbox WHERE trading_decision_id = $1", decision["id"]
    )
    assert job["delivered_at"] is not None and job["broker_status"] == "filled"
    assert job["payload"]["trading_decision_id"] == str(decision["id"])
    lots = await built.pool.fetch("SELECT * FROM tax_lots WHERE ticker = 'XYZ'")
    assert sum(l["remaining_quantity"] for l in lots) == decision["computed_share_quantity"]
    levels = await built.pool.fetchrow("SELECT * FROM position_stop_levels WHERE ticker = 'XYZ' AND active")
    fill_price = lots[0]["cost_basis_per_share"]
    assert levels["entry_price"] == fill_price
    # docs/contracts.md section 6: stop = entry - ATR14 * multiplier, stored to 1/100 of a cent.
    expected_stop = fill_price - levels["atr_value"] * levels["atr_multiplier"]
    assert abs(levels["stop_loss_price"] - expected_stop) <= Decimal("0.00005")
    expected_take_profit = fill_price + (fill_price - expected_stop) * levels["reward_risk_ratio"]
    assert abs(levels["take_profit_price"] - expected_take_profit) <= Decimal("0.00005")
    checks = [c["check"] for c in decision["decision_trace"]["checks"]]
    assert {"input", "entry_gate", "stops", "sizing"} <= set(checks)


async def test_the_order_job_on_the_queue_names_its_decision(stack, redis_client) -> None:
    built, days = stack
    next_day = sessions(days[-1], 2)[1]
    await add_bar(built.pool, "XYZ", next_day, open_=115.0, close=116.0)
    rec_id = await recommend(built.pool, "XYZ", at(days[-1], 16, 10))
    built.clock.set(at(next_day, 9, 45))
    await built.engine.tick()
    jobs = [json.loads(m) for m in await redis_client.lrange(QUEUE_BROKER_ORDERS, 0, -1)]
    decision_id = await built.pool.fetchval(
        "SELECT id FROM trading_decisions WHERE recommendation_id = $1", rec_id
    )
    assert [j["trading_decision_id"] for j in jobs] == [str(decision_id)]
    assert jobs[0]["client_order_id"].startswith(decision_id.hex) and jobs[0]["reason"] == "entry"


async def test_a_stop_crossing_sells_at_once(stack) -> None:
    built, days = stack
    _, bought_day = await _buy_and_fill(built, days)
    stop = await built.pool.fetchval("SELECT stop_loss_price FROM position_stop_levels WHERE active")
    crash_day = sessions(bought_day, 2)[1]
    await add_bar(built.pool, "XYZ", crash_day, open_=float(stop) - 3, close=float(stop) - 4)
    await built.step(at(crash_day, 9, 45))
    exit_ = await built.pool.fetchrow("SELECT * FROM closed_trades WHERE ticker = 'XYZ'")
    assert exit_["exit_reason"] == "stop_loss" and exit_["exit_price"] < stop  # the gap filled below the stop
    assert await built.pool.fetchval("SELECT count(*) FROM position_stop_levels WHERE active") == 0
    exit_decision = await built.pool.fetchrow(
        "SELECT * FROM trading_decisions WHERE side = 'sell' AND recommendation_id IS NULL"
    )
    assert exit_decision["decision"] == "act" and "stop_loss" in json.dumps(exit_decision["decision_trace"])


async def test_a_profitable_close_siphons_into_the_reserve(stack) -> None:
    built, days = stack
    _, bought_day = await _buy_and_fill(built, days)
    take_profit = await built.pool.fetchval("SELECT take_profit_price FROM position_stop_levels WHERE active")
    rally_day = sessions(bought_day, 2)[1]
    await add_bar(built.pool, "XYZ", rally_day, open_=float(take_profit) + 1, close=float(take_profit) + 2)
    await built.step(at(rally_day, 9, 45))
    trade = await built.pool.fetchrow("SELECT * FROM closed_trades WHERE ticker = 'XYZ'")
    assert trade["exit_reason"] == "take_profit" and trade["pnl"] > 0
    ledger = await built.pool.fetchrow("SELECT * FROM reserve_pool_ledger ORDER BY id DESC LIMIT 1")
    assert ledger["trigger_type"] == "profit_siphon"
    assert ledger["amount"] == trade["pnl"] * Decimal("0.20")
    assert ledger["balance_after"] == ledger["amount"]


async def test_restart_rebuilds_the_same_state(stack) -> None:
    built, days = stack
    await _buy_and_fill(built, days)
    quotes = await built.engine.market.prices.quotes(["XYZ"], built.clock.now())
    held = await built.engine.store.held()
    before = held.portfolio(held.positions(quotes), quotes)
    before_breakers = await built.engine.store.breaker_state()
    engine = await built.restart_engine()
    held = await engine.store.held()
    assert held.portfolio(held.positions(quotes), quotes) == before
    assert await engine.store.breaker_state() == before_breakers
    assert (await engine.store.load_settings()) == built.engine.settings


async def test_breaker_trips_halts_entries_and_resumes_next_session(market, redis_client) -> None:
    pool, days = market
    # A concentrated account, so one bad open costs more than the 3% daily-loss limit.
    await enable_engine(
        pool,
        gradual_entry_tranches=1,
        absolute_position_cap=Decimal(20000),
        risk_tier_overrides={
            "moderate": {"base_allocation_pct": "0.5", "max_position_pct": "0.6", "max_sector_pct": "1"}
        },
    )
    await pool.execute("INSERT INTO tickers (ticker, sector) VALUES ('ABC', 'Energy')")
    await seed_ticker(pool, "ABC", RISING, sector="Energy")
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    notifier = built.engine.notifier = RecordingNotifier()
    try:
        _, bought_day = await _buy_and_fill(built, days)
        assert await pool.fetchval("SELECT count(*) FROM tax_lots") == 1
        gap_day, after_day = sessions(bought_day, 3)[1:]
        await add_bar(pool, "XYZ", gap_day, open_=104.0, close=103.0)  # -10% overnight
        for day, price in ((gap_day, 120.0), (after_day, 121.0)):
            await add_bar(pool, "ABC", day, open_=price, close=price)
        await built.step(at(gap_day, 9, 45))
        event = await pool.fetchrow("SELECT * FROM circuit_breaker_events WHERE trigger_type = 'daily_loss'")
        assert event is not None and event["resolved_at"] is None
        assert event["cooldown_expires"] == at(after_day, 9, 30)
        mirrored = await breaker_cache.read(redis_client)  # the Redis mirror for fast lookup (task 8.1)
        assert mirrored.state.active and mirrored.state.cooldown_expires == at(after_day, 9, 30)
        halted = await recommend(pool, "ABC", at(gap_day, 10, 0))
        await built.step(at(gap_day, 10, 5))
        skip = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", halted)
        assert skip["decision"] == "skip" and "daily_loss" in skip["skip_reason"]
        await built.step(at(after_day, 9, 45))
        assert await pool.fetchval("SELECT resolved_at FROM circuit_breaker_events") == at(after_day, 9, 45)
        assert not (await breaker_cache.read(redis_client)).state.active
        resumed = await recommend(pool, "ABC", at(after_day, 9, 50))
        await built.step(at(after_day, 9, 55))
        assert (
            await pool.fetchval(
                "SELECT decision FROM trading_decisions WHERE recommendation_id = $1", resumed
            )
            == "act"
        )
        kinds = [kind for kind, _ in notifier.events]
        assert kinds.index("circuit_breaker_triggered") < kinds.index("circuit_breaker_resumed")
    finally:
        await built.engine.stop()


async def test_a_large_entry_goes_in_tranches_half_an_hour_apart(market, redis_client) -> None:
    pool, days = market
    await enable_engine(pool, gradual_entry_tranches=3)
    built = await build_stack(pool, redis_client, at(days[-1], 16, 5))
    try:
        next_day = sessions(days[-1], 2)[1]
        await add_bar(pool, "XYZ", next_day, open_=115.0, close=116.0)
        rec = await recommend(pool, "XYZ", at(days[-1], 16, 10))
        for minute in (45, 75, 105):
            await built.step(at(next_day, 9, 0) + timedelta(minutes=minute))
        decision = await pool.fetchrow("SELECT * FROM trading_decisions WHERE recommendation_id = $1", rec)
        jobs = await pool.fetch(
            "SELECT * FROM order_outbox WHERE trading_decision_id = $1 ORDER BY tranche_index", decision["id"]
        )
        assert [j["tranche_index"] for j in jobs] == [1, 2, 3]
        assert [j["delivered_at"] - jobs[0]["delivered_at"] for j in jobs] == [
            timedelta(0),
            timedelta(minutes=30),
            timedelta(minutes=60),
        ]
        assert sum(j["quantity"] for j in jobs) == decision["computed_share_quantity"]
        assert max(j["quantity"] for j in jobs) - min(j["quantity"] for j in jobs) <= 1
        assert all(j["payload"]["tranche"]["parent_decision_id"] == str(decision["id"]) for j in jobs)
        assert all(j["broker_status"] == "filled" for j in jobs)
        assert (
            await pool.fetchval("SELECT sum(remaining_quantity) FROM tax_lots")
            == decision["computed_share_quantity"]
        )
    finally:
        await built.engine.stop()
